// Shared by the phone benchmarks (bench-open.mjs, bench-day.mjs): the "weak
// phone, weak network" profile applied over the DevTools protocol, and the
// network figures read from the same protocol session.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { root } from './harness.mjs';

/**
 * The network we call slow 3G: 400 ms added to every request (Chromium's
 * emulated latency), 50,000 bytes/s down and up (400 kbit/s). These are the
 * figures DevTools' "Slow 3G" / "3G" preset describes (500 kbit/s × 0.8, a 400 ms
 * RTT); the DevTools UI itself sends 2,000 ms (400 × 5) as the latency, which
 * `--latency 2000` reproduces.
 */
export const SLOW_3G = { latency: 400, downloadThroughput: 50_000, uploadThroughput: 50_000 };

/** A mid-range phone: the main thread 4× slower (Emulation.setCPUThrottlingRate). */
export const PHONE_CPU = 4;

/** Reads `--name value` from argv, or `fallback`. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** The profiles to run: `desktop` (no throttling) and `phone` (CPU 4×, slow 3G). */
export function profiles(latency) {
  return {
    desktop: { name: 'desktop', cpu: 1, net: null },
    phone: { name: 'phone', cpu: PHONE_CPU, net: { ...SLOW_3G, latency } },
  };
}

/**
 * A DevTools session on `page` that applies a profile and counts the page's
 * network traffic. Playwright's own setOffline sends "no throttling" to the
 * same page, so the benchmarks change the network only through this session.
 */
export async function throttler(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const requests = new Map();
  cdp.on('Network.requestWillBeSent', (e) => {
    const body = (e.request.postDataEntries || []).reduce((n, p) => n + (p.bytes ? Buffer.from(p.bytes, 'base64').length : 0), 0);
    requests.set(e.requestId, { url: e.request.url, method: e.request.method, start: e.timestamp, wallMs: e.wallTime * 1000, upBytes: body, fromSW: false });
  });
  // The body as sent (Content-Length), where the body itself was not reported.
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
    const r = requests.get(e.requestId);
    const len = Number(e.headers['Content-Length'] || e.headers['content-length'] || 0);
    if (r && len > r.upBytes) r.upBytes = len;
  });
  cdp.on('Network.responseReceived', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    r.status = e.response.status;
    r.fromSW = !!e.response.fromServiceWorker;
    r.encoding = e.response.headers['content-encoding'] || e.response.headers['Content-Encoding'] || null;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    r.end = e.timestamp;
    r.downBytes = e.encodedDataLength;
  });
  cdp.on('Network.loadingFailed', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    r.end = e.timestamp;
    r.failed = e.errorText;
  });
  let profile = { cpu: 1, net: null };
  return {
    cdp,
    /** Forgets the requests seen so far. */
    reset() {
      requests.clear();
    },
    /** The requests seen since the last reset (finished or not). */
    requests() {
      return [...requests.values()];
    },
    /** Sets the CPU rate and the network (offline, or the profile's network, or none). */
    async apply(p, { offline = false } = {}) {
      profile = p;
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: p.cpu });
      await this.network(offline);
    },
    /** Offline, or back online at the current profile's network. */
    async network(offline) {
      const n = profile.net;
      await cdp.send('Network.emulateNetworkConditions', {
        offline,
        latency: n ? n.latency : 0,
        downloadThroughput: n ? n.downloadThroughput : -1,
        uploadThroughput: n ? n.uploadThroughput : -1,
      });
    },
  };
}

/** What went over the network, summed: requests, bytes down (as transferred), bytes up (bodies). */
export function traffic(reqs, filter = () => true) {
  const sel = reqs.filter((r) => filter(r) && !r.fromSW);
  return {
    requests: sel.length,
    down_bytes: sel.reduce((n, r) => n + (r.downBytes || 0), 0),
    up_bytes: sel.reduce((n, r) => n + (r.upBytes || 0), 0),
    failed: sel.filter((r) => r.failed).length,
  };
}

/**
 * The commit measured, with a mark when the working tree has changes to the
 * app; when the app is served from a copy (GRIDSYNC_E2E_APP_DIR), that copy is named.
 */
export function measuredCommit() {
  if (process.env.GRIDSYNC_E2E_APP_DIR) return `app copy in ${process.env.GRIDSYNC_E2E_APP_DIR}`;
  try {
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--', 'web', 'client-wasm', 'shared', 'server'], { encoding: 'utf8' }).trim();
    return dirty ? `${head}+uncommitted` : head;
  } catch {
    return 'unknown';
  }
}

/** Which server binary the harness starts (release or debug). */
export function serverBuild() {
  const bin = process.env.GRIDSYNC_SERVER_BIN || '';
  return bin.includes('/release/') ? 'release' : bin ? bin : 'debug';
}

/** The machine's 1-minute load average when a figure was taken (2 cores here: above 2, others were running). */
export function load() {
  return Math.round(os.loadavg()[0] * 10) / 10;
}

/** Median, min, max of numbers. */
export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)], min: s[0], max: s[s.length - 1], n: s.length };
}
