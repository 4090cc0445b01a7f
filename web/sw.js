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
  'photos.js',
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

// Filling the cache costs no second download: each file is revalidated
// (`no-cache`: the server answers a 304 without a body when the copy the page
// just loaded into the HTTP cache is current, by its ETag), and every answer
// must name this worker's BUILD (x-gridsync-build): a file of another build
// (the server updated meanwhile) fails the install, nothing is kept, and the
// browser installs the newer worker instead. Never a mix of two builds.
async function fetchShell() {
  return Promise.all(
    SHELL.map(async (u) => {
      const resp = await fetch(new Request(u, { cache: 'no-cache' }));
      if (!resp.ok) throw new Error(`${u}: ${resp.status}`);
      const build = resp.headers.get('x-gridsync-build');
      if (build && build !== BUILD) throw new Error(`${u} is of build ${build}, this worker is ${BUILD}`);
      return [u, resp];
    }),
  );
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const got = await fetchShell();
      const cache = await caches.open(CACHE);
      try {
        for (const [u, resp] of got) await cache.put(u, resp);
      } catch (e) {
        await caches.delete(CACHE); // all of the shell or nothing
        throw e;
      }
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
  // The API (photos too: /v1/photos/ answers depend on who asks; the app keeps
  // photos in IndexedDB itself), other origins and non-GET requests: straight
  // to the network, never cached.
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
