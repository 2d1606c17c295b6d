// aspjwt token manager: keeps a CRM page's session alive without ever touching a token.
// Tokens live in HttpOnly cookies; this module only schedules refreshes, keeps every tab
// in step, and tells the page who is signed in. No dependencies; import it as an ES module:
//
//   import { createTokenManager } from '/assets/token-manager.js';
//   const auth = createTokenManager();
//   auth.subscribe(state => render(state));
//   await auth.start();
//
// States: 'anonymous', 'authenticated', 'refreshing', 'expired'.

const STATE_KEY = 'aspjwt.auth.state';
const LOCK_KEY = 'aspjwt.auth.refresh-lock';
const CHANNEL = 'aspjwt.auth';

function readCookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return '';
}

/** A tiny observable store: the role `enhancedAuthStore` played. */
export function createStore(initial) {
  let state = { ...initial };
  const listeners = new Set();
  return {
    get: () => state,
    set(patch) {
      state = { ...state, ...patch };
      for (const fn of listeners) fn(state);
    },
    subscribe(fn) {
      listeners.add(fn);
      fn(state);
      return () => listeners.delete(fn);
    },
  };
}

/**
 * Options (all optional):
 *   base                 URL prefix of the auth API ('' = same origin)
 *   refreshIntervalMs    refresh at most this long after the last one (13 minutes)
 *   thresholdSeconds     refresh this long before expiry (300; the service's value wins)
 *   onEvent(event)       called with {type, at, detail} for the page's event log
 */
export function createTokenManager(options = {}) {
  const base = options.base ?? '';
  const refreshIntervalMs = options.refreshIntervalMs ?? 13 * 60 * 1000;
  let thresholdSeconds = options.thresholdSeconds ?? 300;
  const tabId = Math.random().toString(36).slice(2);
  const channel = 'BroadcastChannel' in self ? new BroadcastChannel(CHANNEL) : null;
  const store = createStore(loadState());
  let timer = null;
  let retryDelay = 1000;
  let stopped = false;

  function loadState() {
    try {
      const s = JSON.parse(localStorage.getItem(STATE_KEY) || 'null');
      if (s && s.status === 'authenticated' && s.expiresAt > Date.now()) return { ...s, message: '' };
    } catch (_) { /* a corrupt entry is ignored */ }
    return { status: 'anonymous', user: null, expiresAt: 0, lastRefreshAt: 0, nextRefreshAt: 0, message: '' };
  }

  // Only non-secret state is persisted: who, and until when. Never a token.
  function persist(state) {
    const { status, user, expiresAt, lastRefreshAt, nextRefreshAt } = state;
    localStorage.setItem(STATE_KEY, JSON.stringify({ status, user, expiresAt, lastRefreshAt, nextRefreshAt }));
  }

  function emit(type, detail = '') {
    options.onEvent?.({ type, at: Date.now(), detail });
  }

  function broadcast(message) {
    channel?.postMessage(message);
  }

  function schedule() {
    clearTimeout(timer);
    const s = store.get();
    if (stopped || s.status !== 'authenticated') return;
    const byInterval = (s.lastRefreshAt || Date.now()) + refreshIntervalMs;
    const byExpiry = s.expiresAt - thresholdSeconds * 1000;
    const at = Math.max(Date.now() + 250, Math.min(byInterval, byExpiry));
    store.set({ nextRefreshAt: at });
    persist(store.get());
    timer = setTimeout(() => refresh('scheduled'), at - Date.now());
  }

  function signedIn(info, lastRefreshAt) {
    if (typeof info.refreshThresholdSeconds === 'number') thresholdSeconds = info.refreshThresholdSeconds;
    store.set({
      status: 'authenticated',
      user: { userId: info.userId, email: info.email, role: info.role },
      expiresAt: Date.parse(info.expiresAt),
      lastRefreshAt,
      message: '',
    });
    persist(store.get());
    schedule();
  }

  function signedOut(status, message) {
    clearTimeout(timer);
    store.set({ status, user: null, expiresAt: 0, nextRefreshAt: 0, message });
    persist(store.get());
  }

  async function tokenInfo() {
    const r = await fetch(`${base}/api/auth/token-info`, { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) return null;
    if (!r.ok) throw new Error(`token-info answered ${r.status}`);
    return r.json();
  }

  /** One refresh for the whole browser: a Web Lock, or a localStorage lock with an expiry. */
  async function withRefreshLock(fn) {
    if (navigator.locks?.request) {
      return navigator.locks.request('aspjwt-refresh', { ifAvailable: true }, lock => (lock ? fn() : 'busy'));
    }
    const now = Date.now();
    const held = JSON.parse(localStorage.getItem(LOCK_KEY) || 'null');
    if (held && held.until > now && held.owner !== tabId) return 'busy';
    localStorage.setItem(LOCK_KEY, JSON.stringify({ owner: tabId, until: now + 15000 }));
    try {
      return await fn();
    } finally {
      localStorage.removeItem(LOCK_KEY);
    }
  }

  async function refresh(reason) {
    if (stopped) return;
    const planned = store.get().expiresAt;
    const wasSignedIn = store.get().status === 'authenticated' || store.get().status === 'refreshing';
    const outcome = await withRefreshLock(async () => {
      // Another tab may have refreshed while this one waited: then adopt its result.
      const shared = loadState();
      if (shared.status === 'authenticated' && shared.expiresAt > planned && reason === 'scheduled') {
        store.set({ ...shared });
        return 'adopted';
      }
      store.set({ status: 'refreshing' });
      const r = await fetch(`${base}/api/auth/refresh`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': readCookie('csrf_token') },
      });
      if (r.status === 401 || r.status === 403) return 'ended';
      if (!r.ok) throw new Error(`refresh answered ${r.status}`);
      const info = await tokenInfo();
      if (!info) return 'ended';
      signedIn(info, Date.now());
      broadcast({ type: 'refreshed', state: store.get() });
      return 'refreshed';
    }).catch(err => ({ error: err }));

    if (outcome === 'busy') {
      // Another tab holds the lock: it will broadcast; check back shortly anyway.
      timer = setTimeout(() => refresh('scheduled'), 1000);
    } else if (outcome === 'adopted') {
      emit('adopted', 'another tab refreshed');
      schedule();
    } else if (outcome === 'refreshed') {
      retryDelay = 1000;
      emit('refreshed', `expires ${new Date(store.get().expiresAt).toLocaleTimeString()}`);
    } else if (outcome === 'ended' && reason === 'load' && !wasSignedIn) {
      // A visitor with no session: nothing ended, nothing to say.
      signedOut('anonymous', '');
    } else if (outcome === 'ended') {
      const message = 'Your session has ended (signed out elsewhere, revoked, or expired). Please sign in again.';
      signedOut('expired', message);
      broadcast({ type: 'ended', message });
      emit('ended', message);
    } else if (outcome?.error) {
      // A network error: retry with back-off while the access token is still valid.
      const s = store.get();
      if (Date.now() + retryDelay < s.expiresAt) {
        store.set({ status: 'authenticated', nextRefreshAt: Date.now() + retryDelay });
        emit('retry', `${outcome.error.message || 'network error'}; retrying in ${retryDelay / 1000}s`);
        clearTimeout(timer);
        timer = setTimeout(() => refresh('retry'), retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        const message = 'The session could not be refreshed in time. Please sign in again.';
        signedOut('expired', message);
        emit('ended', message);
      }
    }
  }

  /** Checks token-info now (page load, a tab waking up); refreshes if the access token lapsed. */
  async function check() {
    try {
      const info = await tokenInfo();
      if (info) {
        const s = store.get();
        signedIn(info, s.lastRefreshAt || Date.now());
        if (info.shouldRefresh) refresh('threshold');
      } else {
        await refresh('load');
      }
    } catch (err) {
      emit('retry', `token-info failed: ${err.message}`);
    }
  }

  function onMessage(msg) {
    if (!msg || stopped) return;
    if (msg.type === 'refreshed' && msg.state) {
      store.set({ ...msg.state });
      emit('synced', 'another tab refreshed');
      schedule();
    } else if (msg.type === 'logout') {
      signedOut('anonymous', 'Signed out in another tab.');
      emit('logout', 'another tab signed out');
    } else if (msg.type === 'ended') {
      signedOut('expired', msg.message);
      emit('ended', msg.message);
    }
  }

  channel?.addEventListener('message', e => onMessage(e.data));
  // Fallback when BroadcastChannel is missing: storage events carry the persisted state.
  addEventListener('storage', e => {
    if (channel || e.key !== STATE_KEY) return;
    const s = loadState();
    if (s.status === 'authenticated') onMessage({ type: 'refreshed', state: s });
    else onMessage({ type: 'logout' });
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && store.get().status !== 'anonymous') check();
  });
  addEventListener('online', () => store.get().status === 'authenticated' && check());

  return {
    store,
    subscribe: store.subscribe,
    async start() {
      stopped = false;
      await check();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    async login(email, password) {
      const r = await fetch(`${base}/api/auth/login`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        const message = r.status === 429 ? 'Too many attempts; wait a moment.' : body?.error?.message || 'Sign-in failed.';
        store.set({ message });
        return false;
      }
      const info = await tokenInfo();
      if (!info) return false;
      signedIn(info, Date.now());
      broadcast({ type: 'refreshed', state: store.get() });
      emit('login', info.email);
      return true;
    },
    async logout() {
      await fetch(`${base}/api/auth/logout`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': readCookie('csrf_token') },
      }).catch(() => {});
      signedOut('anonymous', 'Signed out.');
      broadcast({ type: 'logout' });
      emit('logout', 'signed out');
    },
    refreshNow: () => refresh('manual'),
  };
}
