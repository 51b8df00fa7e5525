// A remote join's confirmation code, kept on the phone that joined.
//
// The join's answer is the only one that carries the code the kiosk asks for on arrival
// (`confirm_on_arrival`); online.html keeps it here, status.html shows it until the ticket
// is confirmed or over, then forgets it. It is not personal: it names a ticket, no one.

import { store } from "./ui.js";

const local = store("local");
const key = (ticketId) => `antrian.join.${ticketId}`;

export const joinCode = (ticketId) => local.get(key(ticketId));
export const keepJoinCode = (ticketId, code) => local.set(key(ticketId), code);
export const forgetJoinCode = (ticketId) => local.remove(key(ticketId));
