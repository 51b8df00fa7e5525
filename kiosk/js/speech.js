// Voice calls in Bahasa Indonesia: "Nomor antrian A nol nol tujuh, silakan menuju loket tiga".
//
// The ticket number is read digit by digit (as printed: A007 -> "A, nol, nol, tujuh"); the
// counter's number is read as a number ("Loket 12" -> "loket dua belas"). With no id-ID
// voice on the machine, a chime (WebAudio, no sound file) plays instead and the screen
// flashes the call.

const DIGITS = ["nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan"];
// How an Indonesian reads the letters of the alphabet aloud.
const LETTERS = {
  A: "A", B: "Be", C: "Ce", D: "De", E: "E", F: "Ef", G: "Ge", H: "Ha", I: "I", J: "Je",
  K: "Ka", L: "El", M: "Em", N: "En", O: "O", P: "Pe", Q: "Ki", R: "Er", S: "Es", T: "Te",
  U: "U", V: "Fe", W: "We", X: "Eks", Y: "Ye", Z: "Zet",
};

/** 0..999999 in Indonesian words ("dua belas", "seratus dua puluh lima", "seribu"). */
export function numberWords(n) {
  n = Math.floor(Number(n));
  if (!Number.isFinite(n) || n < 0) return String(n);
  if (n < 10) return DIGITS[n];
  if (n === 10) return "sepuluh";
  if (n === 11) return "sebelas";
  if (n < 20) return `${DIGITS[n - 10]} belas`;
  if (n < 100) {
    const rest = n % 10;
    return `${DIGITS[Math.floor(n / 10)]} puluh${rest ? ` ${DIGITS[rest]}` : ""}`;
  }
  if (n < 1000) {
    const head = Math.floor(n / 100) === 1 ? "seratus" : `${DIGITS[Math.floor(n / 100)]} ratus`;
    return n % 100 ? `${head} ${numberWords(n % 100)}` : head;
  }
  if (n < 1000000) {
    const k = Math.floor(n / 1000);
    const head = k === 1 ? "seribu" : `${numberWords(k)} ribu`;
    return n % 1000 ? `${head} ${numberWords(n % 1000)}` : head;
  }
  return String(n);
}

/** "A007" -> "A, nol, nol, tujuh" (letters by their Indonesian names, digits one by one). */
export function spellNumber(number) {
  return Array.from(String(number).toUpperCase())
    .map((ch) => (/[0-9]/.test(ch) ? DIGITS[Number(ch)] : LETTERS[ch] || ch))
    .join(", ");
}

/** "Loket 3" -> "loket tiga"; numbers inside a counter's name are read as numbers. */
export function counterWords(name) {
  return String(name).replace(/\d+/g, (digits) => numberWords(Number(digits))).toLowerCase();
}

export function callText(number, counterName) {
  return `Nomor antrian, ${spellNumber(number)}. Silakan menuju ${counterWords(counterName)}.`;
}

/** An Indonesian voice installed on this machine, or null. */
export function indonesianVoice() {
  const synth = globalThis.speechSynthesis;
  if (!synth) return null;
  const voices = synth.getVoices() || [];
  return voices.find((v) => /^id([-_]|$)/i.test(v.lang)) || null;
}

/** Speak `text` with `voice`; resolves when done (or after a safety timeout). */
export function speak(text, voice) {
  return new Promise((resolve) => {
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.voice = voice;
    utterance.lang = voice.lang || "id-ID";
    utterance.rate = 0.9;
    const timer = setTimeout(resolve, 15000);
    const done = () => { clearTimeout(timer); resolve(); };
    utterance.onend = done;
    utterance.onerror = done;
    speechSynthesis.speak(utterance);
  });
}

let audio = null;

/** The shared AudioContext (created lazily; a browser may keep it suspended until a touch). */
export function audioContext() {
  const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
  if (!Ctx) return null;
  if (!audio) audio = new Ctx();
  return audio;
}

/** A soft two-tone "ding-dong" made with oscillators. Resolves when it has played. */
export async function chime() {
  const ctx = audioContext();
  if (!ctx) return false;
  if (ctx.state === "suspended") {
    try { await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 300))]); } catch { /* blocked */ }
  }
  const start = ctx.currentTime + 0.05;
  const tones = [[659.25, 0], [523.25, 0.55]];
  for (const [freq, offset] of tones) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.35, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 1.1);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 1.2);
  }
  await new Promise((resolve) => setTimeout(resolve, 1800));
  return ctx.state === "running";
}
