// 网格通 service worker: the app shell from cache (so the app opens with no
// network), /v1/ never cached. The server replaces BUILD with a hash of every
// file of the app it serves, so any change to the app (or a rebuilt web/pkg)
// makes this file differ: the browser installs it, a new cache is filled and
// the old one dropped.
const VERSION = '1.1.0';
const BUILD = '__GRIDSYNC_BUILD__';
const CACHE = `gridsync-shell-${VERSION}-${BUILD}`;
const SHELL = [
  './',
  'index.html',
  'app.js',
  'core.js',
  'db.js',
  'sync.js',
  'ui.js',
  'households.js',
  'visits.js',
  'cases.js',
  'forms.js',
  'today.js',
  'promises.js',
  'style.css',
  'manifest.webmanifest',
  'icons/icon.svg',
  'icons/icon-192.png',
  'icons/icon-512.png',
  'pkg/gridsync_client.js',
  'pkg/gridsync_client_bg.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // Bypass the HTTP cache: the shell must be one consistent version.
      await cache.addAll(SHELL.map((u) => new Request(u, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith('gridsync-shell-') && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  // The API, other origins and non-GET requests: straight to the network, never cached.
  if (req.method !== 'GET' || url.origin !== location.origin || url.pathname.startsWith('/v1/') || url.pathname === '/healthz') return;
  if (req.mode === 'navigate') {
    event.respondWith(
      caches.match('index.html', { cacheName: CACHE }).then((hit) => hit || fetch(req)),
    );
    return;
  }
  event.respondWith(
    caches.match(req, { cacheName: CACHE, ignoreSearch: true }).then((hit) => hit || fetch(req)),
  );
});
