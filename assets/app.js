// The session page: a login form, then the session panel, driven by the token manager.
import { createTokenManager } from '/assets/token-manager.js';

const $ = id => document.getElementById(id);
const fmt = t => (t ? new Date(t).toLocaleTimeString() : '—');
const events = [];

function logEvent(e) {
  events.unshift(e);
  events.length = Math.min(events.length, 50);
  $('events').replaceChildren(...events.map(ev => {
    const li = document.createElement('li');
    li.dataset.type = ev.type;
    const time = document.createElement('time');
    time.textContent = fmt(ev.at);
    const text = document.createElement('span');
    text.textContent = `${ev.type}${ev.detail ? ': ' + ev.detail : ''}`;
    li.append(time, text);
    return li;
  }));
}

const params = new URLSearchParams(location.search);
const auth = createTokenManager({
  // Tests shorten the schedule through the query string; the service's threshold still wins.
  refreshIntervalMs: params.has('interval') ? Number(params.get('interval')) * 1000 : undefined,
  onEvent: logEvent,
});

function render(s) {
  const signedIn = s.status === 'authenticated' || s.status === 'refreshing';
  $('login').hidden = signedIn;
  $('session').hidden = !signedIn;
  $('login-message').textContent = s.message || '';
  document.body.dataset.status = s.status;
  if (signedIn && s.user) {
    $('user-email').textContent = s.user.email;
    $('user-role').textContent = s.user.role.replace('_', ' ');
    $('status').textContent = s.status;
    $('status').className = `status-${s.status}`;
    $('last-refresh').textContent = fmt(s.lastRefreshAt);
    $('next-refresh').textContent = fmt(s.nextRefreshAt);
    $('next-refresh').dataset.at = String(s.nextRefreshAt || 0);
  }
  $('countdown').dataset.expiresAt = String(s.expiresAt || 0);
}

function tick() {
  const at = Number($('countdown').dataset.expiresAt || 0);
  const left = Math.max(0, Math.round((at - Date.now()) / 1000));
  $('countdown').textContent = at ? `${Math.floor(left / 60)}m ${String(left % 60).padStart(2, '0')}s` : '—';
  $('countdown').dataset.seconds = String(left);
}

auth.subscribe(render);
setInterval(tick, 1000);

$('login-form').addEventListener('submit', async e => {
  e.preventDefault();
  $('login-button').disabled = true;
  await auth.login($('email').value, $('password').value);
  $('password').value = '';
  $('login-button').disabled = false;
  tick();
});
$('logout-button').addEventListener('click', () => auth.logout());

auth.start().then(tick);
