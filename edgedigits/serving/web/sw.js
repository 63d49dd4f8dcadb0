// Offline copy of the page: every file is cached on install (the list and the version are filled in
// by edgedigits/serving/web_site.py), then served from the cache first; a new version replaces the old cache.
const CACHE = "edgedigits-{{version}}";
const FILES = {{files}};

self.addEventListener("install", event => {
  event.waitUntil(caches.open(CACHE).then(cache => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", event => {
  event.waitUntil(caches.keys()
    .then(keys => Promise.all(keys.filter(k => k.startsWith("edgedigits-") && k !== CACHE).map(k => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", event => {
  if (event.request.method !== "GET") return;  // POST /predict goes to the server as before
  event.respondWith(caches.match(event.request, {ignoreSearch: true}).then(hit => hit || fetch(event.request)));
});
