// The status page's notification helper: where a page may not construct a Notification
// itself (Chrome on Android), status.js asks this worker's registration to show it. It
// takes no push subscription and caches nothing; a touch on the notification brings the
// status page back (or opens it again).

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const page = windows.find((w) => url && w.url === url) || windows.find((w) => w.url.includes("/status.html"));
    if (page) return page.focus();
    return url ? self.clients.openWindow(url) : undefined;
  })());
});
