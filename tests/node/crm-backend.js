// A stand-in for the CRM's own Node/Express backend, for `aspjwt health`'s tests: the
// libraries it uses (express, cookie-parser, helmet, express-rate-limit, jsonwebtoken,
// dotenv) and the behaviour its documentation describes. Loopback only.
//
//   ENV_FILE   the .env with JWT_SECRET and JWT_REFRESH_SECRET (dotenv)
//   PROBE_EMAIL, PROBE_PASSWORD   the one account
//   FAULT      none | no-rotate | accept-previous | logout-keeps | rotate-other-key
//              | typ-disagrees | rotate-long-access | refresh-long
//
// Prints "listening PORT" once it listens on an ephemeral port of 127.0.0.1.
'use strict';

const crypto = require('node:crypto');
const express = require('express');
const cookieParser = require('cookie-parser');
const helmet = require('helmet');
const { rateLimit } = require('express-rate-limit');
const jwt = require('jsonwebtoken');

require('dotenv').config({ path: process.env.ENV_FILE, quiet: true });
const ACCESS_SECRET = process.env.JWT_SECRET;
const REFRESH_SECRET = process.env.JWT_REFRESH_SECRET;
const FAULT = process.env.FAULT || 'none';
const USER = { id: 'u-1', email: process.env.PROBE_EMAIL, name: 'Probe', role: 'support' };
const ACCESS_TTL = 15 * 60;
const REFRESH_TTL = 7 * 24 * 3600;

// family id -> { current: jti of the refresh token in force, used: Set of spent jtis, revoked }
const families = new Map();

const app = express();
app.use(helmet());
app.use(express.json({ limit: '10kb' }));
app.use(cookieParser());
app.use('/api/', rateLimit({ windowMs: 60_000, limit: 1000, standardHeaders: 'draft-7', legacyHeaders: false }));

const cookieOptions = (maxAgeSecs) => ({
  httpOnly: true,
  sameSite: 'strict',
  secure: process.env.NODE_ENV === 'production',
  path: '/',
  maxAge: maxAgeSecs * 1000,
});

// Keys a broken backend signs rotated tokens with (FAULT=rotate-other-key).
const OTHER_KEYS = [crypto.randomBytes(64).toString('base64'), crypto.randomBytes(64).toString('base64')];

function issue(res, family) {
  const now = Math.floor(Date.now() / 1000);
  const jti = crypto.randomUUID();
  const rotating = families.get(family).current !== null;
  const [accessKey, refreshKey] = rotating && FAULT === 'rotate-other-key' ? OTHER_KEYS : [ACCESS_SECRET, REFRESH_SECRET];
  const accessClaims = { sub: USER.id, role: USER.role, type: 'access', jti: crypto.randomUUID() };
  if (FAULT === 'typ-disagrees') accessClaims.typ = 'refresh';
  const tenYears = 10 * 365 * 24 * 3600;
  const accessTtl = rotating && FAULT === 'rotate-long-access' ? tenYears : ACCESS_TTL;
  const refreshTtl = FAULT === 'refresh-long' ? tenYears : REFRESH_TTL;
  const access = jwt.sign(accessClaims, accessKey, { expiresIn: accessTtl });
  const refresh = jwt.sign({ sub: USER.id, role: USER.role, type: 'refresh', jti, fam: family }, refreshKey, {
    expiresIn: refreshTtl,
  });
  families.get(family).current = jti;
  res.cookie('access_token', access, cookieOptions(ACCESS_TTL));
  res.cookie('refresh_token', refresh, cookieOptions(REFRESH_TTL));
  return new Date((now + ACCESS_TTL) * 1000).toISOString();
}

function clear(res) {
  res.clearCookie('access_token', { path: '/' });
  res.clearCookie('refresh_token', { path: '/' });
}

app.get('/api/health', (req, res) => res.json({ status: 'ok' }));

app.post('/api/auth/login', (req, res) => {
  const { email, password } = req.body || {};
  if (email !== USER.email || password !== process.env.PROBE_PASSWORD) {
    return res.status(401).json({ error: 'Invalid credentials' });
  }
  const family = crypto.randomUUID();
  families.set(family, { current: null, used: new Set(), revoked: false });
  const accessTokenExpiresAt = issue(res, family);
  res.json({ user: USER, accessTokenExpiresAt });
});

app.post('/api/auth/refresh', (req, res) => {
  const raw = req.cookies.refresh_token;
  if (!raw) return res.status(401).json({ error: 'No refresh token' });
  let claims;
  try {
    claims = jwt.verify(raw, REFRESH_SECRET);
  } catch {
    return res.status(401).json({ error: 'Invalid refresh token' });
  }
  const fam = families.get(claims.fam);
  if (!fam || fam.revoked || claims.type !== 'refresh') {
    clear(res);
    return res.status(401).json({ error: 'Session ended' });
  }
  if (claims.jti !== fam.current && FAULT !== 'accept-previous') {
    fam.revoked = true; // reuse of a spent token: the whole session ends
    clear(res);
    return res.status(401).json({ error: 'Refresh token reuse detected' });
  }
  if (FAULT === 'no-rotate') {
    res.cookie('refresh_token', raw, cookieOptions(REFRESH_TTL));
    return res.json({ user: USER });
  }
  fam.used.add(claims.jti);
  const accessTokenExpiresAt = issue(res, claims.fam);
  res.json({ user: USER, accessTokenExpiresAt });
});

app.post('/api/auth/logout', (req, res) => {
  const raw = req.cookies.refresh_token;
  if (raw && FAULT !== 'logout-keeps') {
    try {
      const fam = families.get(jwt.verify(raw, REFRESH_SECRET).fam);
      if (fam) fam.revoked = true;
    } catch {
      // an invalid token ends nothing; the cookies are cleared all the same
    }
  }
  clear(res);
  res.json({ message: 'Logged out' });
});

app.get('/api/auth/token-info', (req, res) => {
  const header = req.headers.authorization || '';
  const raw = req.cookies.access_token || (header.startsWith('Bearer ') ? header.slice(7) : null);
  if (!raw) return res.status(401).json({ error: 'Not authenticated' });
  let claims;
  try {
    claims = jwt.verify(raw, ACCESS_SECRET);
  } catch {
    return res.status(401).json({ error: 'Invalid token' });
  }
  if (claims.type !== 'access') return res.status(401).json({ error: 'Invalid token' });
  const now = Math.floor(Date.now() / 1000);
  const expiresInSeconds = Math.max(0, claims.exp - now);
  res.json({
    userId: claims.sub,
    role: claims.role,
    issuedAt: new Date(claims.iat * 1000).toISOString(),
    expiresAt: new Date(claims.exp * 1000).toISOString(),
    expiresInSeconds,
    shouldRefresh: expiresInSeconds < 5 * 60,
  });
});

const server = app.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
// The test that started it closes stdin when it is done (or dies): the backend goes too.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
