// The browser suite: starts each example app (axum, actix, poem) on a free port with its own
// SQLite file and the test outbox on, and drives the demo page at `/` in headless Chromium:
// sign up → verify → log in → profile → MFA enrolment → MFA login → sessions (revoke another
// browser) → change password → new backup codes → API keys → log out → forgot password and the
// reset page → the first admin (FORCE_CHANGE_PASSWORD) → admin list; then, on a second instance
// of the app with MFA mandatory, MFA_SETUP_REQUIRED; then passkeys with Chromium's virtual
// authenticator (add, sign in, answer MFA_REQUIRED, rename, remove). Codes and links come from
// `GET /__test/outbox`; TOTP codes are computed here from the secret the page shows.
//
// node run.mjs [axum-app actix-app poem-app]   (bash .ci/browser builds the apps first)
// Environment: CARGO_TARGET_DIR (where the binaries are; default <repo>/target),
// CHROMIUM (default /usr/bin/chromium). Screenshots: <repo>/target/browser/<app>/NN-<step>.png.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, openSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const targetDir = resolve(repo, process.env.CARGO_TARGET_DIR || 'target');
const shotsRoot = join(repo, 'target', 'browser');
const APPS = ['axum-app', 'actix-app', 'poem-app'];
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : APPS;
const PASSWORD = 'Correct-Horse-Battery-42';
const NEW_PASSWORD = 'Stapled-Lantern-Orbit-77';
const RESET_PASSWORD = 'Marble-Compass-Harbor-58';
const ADMIN = 'admin@example.com';
const ADMIN_PASSWORD = 'Quartz-Meadow-Lantern-19';
const WAIT = 10_000;
// The whole suite normally takes about a minute; a hang (a browser that never starts, a server that
// stops answering) ends it with a message instead of stalling CI.
const SUITE_LIMIT = 5 * 60_000;

const servers = [];
function killServers() {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGTERM');
}
process.on('exit', killServers);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killServers(); process.exit(130); });

class Failure extends Error {}
const fail = (msg) => { throw new Failure(msg); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, base32 secret) ------------------------------
function base32(secret) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of secret.replace(/[\s=]/g, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) fail(`TOTP secret has a non-base32 character: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
  }
  return Buffer.from(out);
}
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', base32(secret)).update(counter).digest();
  const o = h[19] & 15;
  const n = (((h[o] & 127) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3]) % 1_000_000;
  return String(n).padStart(6, '0');
}
const nowStep = () => Math.floor(Date.now() / 30_000);
// The RFC 6238 test vector (SHA-1, T = 59 s → 94287082, 6 digits: 287082), so a broken helper
// fails here and not as a puzzling VERIFY_CODE_INVALID.
if (totp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 1) !== '287082') fail('TOTP helper fails the RFC 6238 vector');

// ---- servers ---------------------------------------------------------------------------------
// A port the OS says is free now (the app binds it a moment later).
function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => res(port)); });
  });
}
function binary(app) {
  const bin = join(targetDir, 'debug', app);
  if (!existsSync(bin)) fail(`${bin} is missing: build it with cargo build -p ${app} (bash .ci/browser does)`);
  return bin;
}
function serverEnv(app, port, db, extra) {
  return {
    ...process.env,
    ...extra,
    NAUTH_BIND: `127.0.0.1:${port}`,
    NAUTH_DATABASE_URL: `sqlite://${db}?mode=rwc`,
    NAUTH_TEST_OUTBOX: '1',
    NAUTH_SECRET: `browser-suite-secret-${app}-0123456789abcdef`,
    NAUTH_PASSWORD__ARGON2_MEMORY_KIB: '8',
    NAUTH_PASSWORD__ARGON2_ITERATIONS: '1',
    RUST_LOG: 'warn',
  };
}
// The first admin, made by the app's own `--create-admin` on the app's database before it
// starts; answers the one-time password it prints.
function createAdmin(app, env) {
  const r = spawnSync(binary(app), ['--create-admin', ADMIN], { env, encoding: 'utf8', timeout: 30_000 });
  const m = /one-time password: (\S+)/.exec(r.stdout || '');
  if (r.status !== 0 || !m) fail(`${app} --create-admin failed (status ${r.status}): ${r.stderr}${r.stdout}`);
  return m[1];
}
async function startServer(app, port, dir, name, extra = {}) {
  const db = join(dir, `${name}.db`);
  const env = serverEnv(app, port, db, extra);
  const adminOnce = createAdmin(app, env);
  const log = openSync(join(shotsRoot, app, `${name}.log`), 'w');
  const child = spawn(binary(app), [], { env, stdio: ['ignore', log, log] });
  servers.push(child);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) fail(`${app} exited with status ${child.exitCode} at start (see target/browser/${app}/${name}.log)`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) fail(`${app} did not answer ${base}/healthz within 30 s`);
    await sleep(100);
  }
  return { base, adminOnce, child };
}

// ---- outbox ----------------------------------------------------------------------------------
async function mails(base, to) {
  const r = await fetch(`${base}/__test/outbox?to=${encodeURIComponent(to)}`);
  if (r.status !== 200) fail(`GET /__test/outbox answered ${r.status}`);
  return (await r.json()).messages;
}
// Waits for mail number `n` (1-based) to `to` (mail leaves after the HTTP answer).
async function mail(base, to, n) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const list = await mails(base, to);
    if (list.length >= n) return list[n - 1];
    if (Date.now() > deadline) fail(`no mail number ${n} to ${to} within ${WAIT / 1000} s (have ${list.length})`);
    await sleep(100);
  }
}
// The 6-digit code in a mail's text (not a digit run inside the link's token).
function codeIn(m) {
  const line = m.text.split('\n').find((l) => !l.includes('token=') && /\b\d{6}\b/.test(l));
  if (!line) fail(`the mail to ${m.to} ("${m.subject}") has no 6-digit code`);
  return /\b(\d{6})\b/.exec(line)[1];
}
// The link in a mail's text that carries `token=`.
function linkIn(m) {
  const url = /https?:\/\/\S*[?&]token=[A-Za-z0-9_.~%-]+/.exec(m.text);
  if (!url) fail(`the mail to ${m.to} ("${m.subject}") has no token link`);
  return url[0];
}

// ---- page helpers ----------------------------------------------------------------------------
function steps(page, app, first = 1) {
  let n = first - 1;
  const dir = join(shotsRoot, app);
  return {
    async shot(name) {
      n += 1;
      const file = join(dir, `${String(n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async failShot() {
      await page.screenshot({ path: join(dir, 'FAILED.png'), fullPage: true }).catch(() => {});
    },
  };
}
const text = (page, sel) => page.locator(sel).innerText();
// Waits until the element (a selector or a locator) is visible and its text contains `want`;
// the failure names what was expected, what the page shows, and the page's last response.
async function expectText(page, target, want, what) {
  const loc = typeof target === 'string' ? page.locator(target) : target;
  const deadline = Date.now() + WAIT;
  let shown = '(not found)';
  for (;;) {
    try {
      shown = await loc.first().innerText({ timeout: 1000 });
      if (shown.includes(want) && await loc.first().isVisible()) return;
    } catch { /* not there yet */ }
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  const last = await page.locator('#out').textContent().catch(() => '');
  fail(`${what}: expected ${target} to show "${want}", it shows "${shown}".\nLast response: ${last}`);
}
async function expectVisible(page, sel, what) {
  await page.locator(sel).waitFor({ state: 'visible', timeout: WAIT })
    .catch(() => fail(`${what}: ${sel} never became visible`));
}
async function expectHidden(page, sel, what) {
  await page.locator(sel).waitFor({ state: 'hidden', timeout: WAIT })
    .catch(() => fail(`${what}: ${sel} is still visible`));
}
async function open(page, base) {
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-ready=true]', { timeout: WAIT });
}
async function login(page, identifier, password) {
  await page.fill('#li-identifier', identifier);
  await page.fill('#li-password', password);
  await page.click('#li-go');
}
async function logout(page, what) {
  await page.click('#lo-go');
  await expectText(page, '#whoami', 'Signed out', what);
}

// ---- the walk --------------------------------------------------------------------------------
async function walk(browser, app, server) {
  const { base } = server;
  const email = `demo.${app}@example.com`;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const s = steps(page, app);
  try {
    // 1. The page, signed out.
    await open(page, base);
    await expectText(page, '#whoami', 'Signed out', 'fresh page');
    await expectVisible(page, '#signup-form', 'fresh page');
    for (const href of ['/auth/docs', '/auth/openapi.json', '/healthz']) {
      const status = await page.evaluate(async (h) => (await fetch(h)).status, href);
      if (status !== 200) fail(`the footer link ${href} answers ${status}`);
    }
    await s.shot('start');

    // 2. Sign up: the answer is the VERIFY_EMAIL challenge.
    await page.fill('#su-email', email);
    await page.fill('#su-password', PASSWORD);
    await page.click('#su-go');
    await expectText(page, '#ch-name', 'VERIFY_EMAIL', 'signup');
    await expectHidden(page, '#auth-card', 'signup (the forms give way to the challenge)');
    await s.shot('signup-verify-email');

    // 3. A wrong code shows the contract's error, the mailed one signs in.
    await page.fill('#ch-code', '000000');
    await page.click('#ch-go');
    await expectText(page, '#ch-msg', 'VERIFY_CODE_INVALID', 'wrong verification code');
    await expectText(page, '#ch-msg', 'attempt(s) left', 'wrong verification code details');
    await s.shot('verify-wrong-code');
    await page.fill('#ch-code', codeIn(await mail(base, email, 1)));
    await page.click('#ch-go');
    await expectText(page, '#whoami', `Signed in as ${email}`, 'verification');
    await expectText(page, '#pf-status', 'email verified', 'profile after verification');
    await s.shot('verified');

    // 4. Log out, log in with the password.
    await logout(page, 'logout after verification');
    await login(page, email, 'Wrong-Password-000');
    await expectText(page, '#li-msg', 'AUTH_INVALID_CREDENTIALS', 'login with a wrong password');
    await login(page, email, PASSWORD);
    await expectText(page, '#pf-email', email, 'login');
    await s.shot('logged-in');

    // A second browser ("another device") logs in too, for the sessions step.
    const other = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const otherPage = await other.newPage();
    await open(otherPage, base);
    await login(otherPage, email, PASSWORD);
    await expectText(otherPage, '#pf-email', email, 'login from a second browser');

    // 5. Profile and a protected app route through the access cookie.
    await page.click('#pr-go');
    await expectText(page, '#pf-msg', 'Profile reloaded', 'profile reload');
    await expectText(page, '#pf-roles', 'user', 'profile roles');
    await page.click('#data-go');
    await expectText(page, '#data-out', '200 · protected data', 'GET /api/data');
    await s.shot('profile');

    // 6. MFA enrolment: the QR code and the secret, then a TOTP code turns it on.
    await expectText(page, '#mfa-state', 'off', 'MFA status before enrolment');
    await page.click('#mfa-setup');
    await expectVisible(page, '#mfa-qr-panel', 'MFA setup');
    await page.waitForFunction(() => {
      const img = document.getElementById('mfa-img');
      return img.src.startsWith('data:image/png;base64,') && img.complete && img.naturalWidth > 0;
    }, null, { timeout: WAIT }).catch(() => fail('MFA setup: the QR code image did not load'));
    const secret = (await text(page, '#mfa-secret')).trim();
    if (!/^[A-Z2-7]{16,}=*$/.test(secret)) fail(`MFA setup: "${secret}" is not a base32 secret`);
    await page.locator('#mfa-card').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shotsRoot, app, 'readme.png') });
    await s.shot('mfa-qr');
    const enrolStep = nowStep();
    await page.fill('#mfa-code', totp(secret, enrolStep));
    await page.click('#mfa-verify');
    await expectVisible(page, '#backup-panel', 'MFA enrolment (backup codes)');
    const backup = await page.locator('#backup-codes li').allInnerTexts();
    if (backup.length !== 10) fail(`MFA enrolment: ${backup.length} backup codes shown, expected 10`);
    await expectText(page, '#mfa-state', 'on · totp · 10 backup codes left', 'MFA status after enrolment');
    await expectText(page, '#pf-status', 'two-factor on', 'profile after enrolment');
    await s.shot('mfa-on-backup-codes');
    await expectText(page, '#mfa-devices', 'Authenticator app', 'MFA factor list');
    await page.click('#backup-done');
    await expectHidden(page, '#backup-panel', 'backup codes dismissed');

    // 7. Log in again: MFA_REQUIRED, answered with the next step's TOTP code (a step used once
    // is refused, and ±1 step is accepted).
    await logout(page, 'logout before the MFA login');
    await login(page, email, PASSWORD);
    await expectText(page, '#ch-name', 'MFA_REQUIRED', 'login with MFA on');
    await s.shot('mfa-required');
    await page.selectOption('#ch-method', 'totp');
    await page.fill('#ch-code', totp(secret, enrolStep + 1));
    await page.click('#ch-go');
    await expectText(page, '#whoami', `Signed in as ${email}`, 'MFA login');
    await expectText(page, '#pf-email', email, 'profile after the MFA login');
    await s.shot('mfa-login');

    // 8. Sessions: this browser and the other one; revoking the other signs it out.
    await page.click('#sessions-load');
    await expectText(page, '#session-count', '2 active sessions', 'sessions list');
    const rows = page.locator('[data-testid=session-row]');
    if ((await rows.count()) !== 2) fail(`sessions: ${await rows.count()} rows, expected 2`);
    await expectText(page, '[data-testid=session-row][data-current=true]', 'this browser', 'current session tag');
    await s.shot('sessions');
    await page.locator('[data-testid=session-row][data-current=false] button').click();
    await expectText(page, '#sessions-msg', 'Session revoked', 'session revoke');
    await expectText(page, '#session-count', '1 active session', 'sessions after the revoke');
    await otherPage.reload();
    await otherPage.waitForSelector('body[data-ready=true]', { timeout: WAIT });
    await expectText(otherPage, '#whoami', 'Signed out', 'the revoked browser');
    await other.close();
    await s.shot('session-revoked');

    // 9. Change password: a wrong current one is refused, the right one succeeds.
    await page.fill('#pw-old', 'Not-My-Password-1');
    await page.fill('#pw-new', NEW_PASSWORD);
    await page.click('#pw-go');
    await expectText(page, '#pw-msg', 'PASSWORD_INCORRECT', 'change password with a wrong one');
    await page.fill('#pw-old', PASSWORD);
    await page.fill('#pw-new', NEW_PASSWORD);
    await page.click('#pw-go');
    await expectText(page, '#pw-msg', 'Password changed', 'change password');
    await page.click('#data-go');
    await expectText(page, '#data-out', '200 · protected data', 'GET /api/data after the password change (fresh cookies)');
    await s.shot('password-changed');

    // New backup codes, confirmed with the new password: ten others replace the first ten.
    await page.fill('#mfa-password', NEW_PASSWORD);
    await page.click('#mfa-backup');
    await expectText(page, '#mfa-msg', 'New backup codes made', 'backup code regeneration');
    const fresh = await page.locator('#backup-codes li').allInnerTexts();
    if (fresh.length !== 10 || fresh.some((c) => backup.includes(c))) {
      fail(`backup code regeneration: got ${JSON.stringify(fresh)} after ${JSON.stringify(backup)}`);
    }
    await s.shot('new-backup-codes');
    await page.click('#backup-done');

    // 10. API keys: the old password no longer proves anything; the new one creates a key,
    // which is shown once and answers /api/reports until it is revoked.
    await page.fill('#key-name', 'nightly reports');
    await page.fill('#key-password', PASSWORD);
    await page.click('#key-create');
    await expectText(page, '#key-msg', 'PASSWORD_INCORRECT', 'API key with the old password');
    await page.fill('#key-password', NEW_PASSWORD);
    await page.click('#key-create');
    await expectText(page, '#key-msg', 'Key "nightly reports" created', 'API key creation');
    const key = (await text(page, '#key-value')).trim();
    if (!/^nk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/.test(key)) fail(`API key: "${key}" is not an nk_ key`);
    await expectText(page, '#key-count', '1 active key', 'API key list');
    await expectText(page, '[data-testid=key-row]', 'nightly reports', 'API key row');
    await expectText(page, '[data-testid=key-row]', key.slice(-4), 'API key row (last four)');
    await page.click('#key-try');
    await expectText(page, '#key-try-out', '200 · reports', 'GET /api/reports with the key');
    await s.shot('api-key');
    await page.locator('[data-testid=key-row] button').click();
    await expectText(page, '#key-msg', 'revoked', 'API key revoke');
    await expectText(page, '#key-count', '0 active keys', 'API key list after the revoke');
    await page.click('#key-try');
    await expectText(page, '#key-try-out', '401', 'GET /api/reports with the revoked key');
    await s.shot('api-key-revoked');

    // 11. Log out: the page and the server agree.
    await logout(page, 'logout');
    await expectVisible(page, '#login-form', 'logged-out page');
    await open(page, base);
    await expectText(page, '#whoami', 'Signed out', 'logged-out page after a reload');
    const after = await page.evaluate(async () => (await fetch('/api/data')).status);
    if (after !== 401) fail(`GET /api/data after logout answered ${after}, expected 401`);
    await s.shot('logged-out');

    // 12. Forgot password: the mailed link opens /reset-password, which sets a new password;
    // logging in with it reaches the MFA check (the password is right, MFA still applies).
    const before = (await mails(base, email)).length;
    await page.click('#fp-open');
    await page.fill('#fp-identifier', email);
    await page.click('#fp-go');
    await expectText(page, '#fp-msg', 'If the account exists', 'forgot password');
    await s.shot('forgot-password');
    const link = linkIn(await mail(base, email, before + 1));
    if (!link.startsWith(`${base}/reset-password?token=`)) fail(`reset link ${link} does not open ${base}/reset-password`);
    await page.goto(link);
    await page.fill('#pw', RESET_PASSWORD);
    await page.click('#go');
    await expectText(page, '#out', 'Password changed', 'the reset page');
    await s.shot('reset-password-page');
    await page.click('#go');
    await expectText(page, '#out', 'PASSWORD_RESET_CODE_INVALID', 'the reset link used twice');
    await open(page, base);
    await login(page, email, NEW_PASSWORD);
    await expectText(page, '#li-msg', 'AUTH_INVALID_CREDENTIALS', 'login with the password before the reset');
    await login(page, email, RESET_PASSWORD);
    await expectText(page, '#ch-name', 'MFA_REQUIRED', 'login with the reset password');
    await page.click('#ch-cancel');
    await expectVisible(page, '#login-form', 'start over after the MFA check');

    // 13. The first admin: the one-time password forces a new one (FORCE_CHANGE_PASSWORD),
    // then the admin section lists the users.
    await login(page, ADMIN, server.adminOnce);
    await expectText(page, '#ch-name', 'FORCE_CHANGE_PASSWORD', 'first admin login');
    await expectVisible(page, '#ch-newpw', 'FORCE_CHANGE_PASSWORD form');
    await s.shot('admin-force-change-password');
    await page.fill('#ch-newpw', ADMIN_PASSWORD);
    await page.click('#ch-go');
    await expectText(page, '#whoami', `Signed in as ${ADMIN}`, 'admin after the new password');
    await expectText(page, '#pf-roles', 'admin', 'admin roles');
    await page.click('#adm-list');
    await expectText(page, '#adm-users', email, 'admin user list');
    await expectText(page, '#adm-users', ADMIN, 'admin user list');
    const userRow = page.locator('[data-testid=admin-user-row]', { hasText: email });
    await expectText(page, '#adm-users', 'MFA', 'admin user list shows the demo user\'s MFA');
    await page.locator('#admin').scrollIntoViewIfNeeded();
    await s.shot('admin-users');
    await userRow.getByRole('button', { name: 'Disable' }).click();
    await expectText(page, '#adm-msg', `${email}: disabled`, 'admin disables a user');
    await expectText(page, userRow, 'disabled', 'the disabled user\'s row');
    await s.shot('admin-user-disabled');

    // 14. With MFA mandatory (the same app, mfa.enforcement = "required"), a new account's
    // first login sets up a factor through MFA_SETUP_REQUIRED and gets its backup codes.
    const forced = server.enforced.base;
    const email2 = `forced.${app}@example.com`;
    await open(page, forced);
    await page.fill('#su-email', email2);
    await page.fill('#su-password', PASSWORD);
    await page.click('#su-go');
    await expectText(page, '#ch-name', 'VERIFY_EMAIL', 'signup with MFA mandatory');
    await page.fill('#ch-code', codeIn(await mail(forced, email2, 1)));
    await page.click('#ch-go');
    await expectText(page, '#ch-name', 'MFA_SETUP_REQUIRED', 'verification with MFA mandatory');
    await expectVisible(page, '#ch-method', 'MFA_SETUP_REQUIRED method choice');
    await page.selectOption('#ch-method', 'totp');
    await page.click('#ch-setup');
    await expectVisible(page, '#ch-qr', 'MFA_SETUP_REQUIRED set-up data');
    const secret2 = (await text(page, '#ch-secret')).trim();
    await s.shot('mfa-setup-required');
    await page.fill('#ch-code', totp(secret2, nowStep()));
    await page.click('#ch-go');
    await expectText(page, '#whoami', `Signed in as ${email2}`, 'MFA_SETUP_REQUIRED answered');
    await expectVisible(page, '#backup-panel', 'backup codes after MFA_SETUP_REQUIRED');
    const codes2 = await page.locator('#backup-codes li').allInnerTexts();
    if (codes2.length !== 10) fail(`MFA_SETUP_REQUIRED: ${codes2.length} backup codes shown, expected 10`);
    await expectText(page, '#mfa-state', 'on · totp', 'MFA status after MFA_SETUP_REQUIRED');
    await s.shot('mfa-setup-done');

    if (pageErrors.length) fail(`the page threw: ${pageErrors.join('; ')}`);
  } catch (e) {
    await s.failShot();
    throw e;
  } finally {
    await context.close();
  }
}

// ---- passkeys --------------------------------------------------------------------------------
// A passkey walk on http://localhost:<port> (a secure context; the apps' relying party id is
// `localhost`), with Chromium's virtual authenticator (DevTools protocol): sign up, add a passkey,
// sign out, sign in with it; turn on TOTP and answer MFA_REQUIRED with the passkey; rename and
// remove it.
async function passkeyWalk(browser, app, server) {
  const base = server.base.replace('127.0.0.1', 'localhost');
  const email = `keys.${app}@example.com`;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const s = steps(page, app, 50);
  try {
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    await open(page, base);
    await page.fill('#su-email', email);
    await page.fill('#su-password', PASSWORD);
    await page.click('#su-go');
    await expectText(page, '#ch-name', 'VERIFY_EMAIL', 'passkeys: signup');
    await page.fill('#ch-code', codeIn(await mail(server.base, email, 1)));
    await page.click('#ch-go');
    await expectText(page, '#whoami', `Signed in as ${email}`, 'passkeys: verification');
    await expectText(page, '#pk-count', '0 passkeys', 'passkeys: empty list');

    // Add a passkey: a wrong password is refused, the right one makes the authenticator create it.
    await page.fill('#pk-name', 'Virtual key');
    await page.fill('#pk-password', 'Wrong-Password-000');
    await page.click('#pk-add');
    await expectText(page, '#pk-msg', 'PASSWORD_INCORRECT', 'passkeys: add with a wrong password');
    await page.fill('#pk-password', PASSWORD);
    await page.click('#pk-add');
    await expectText(page, '#pk-msg', 'Passkey "Virtual key" added', 'passkeys: add');
    await expectText(page, '#pk-count', '1 passkey', 'passkeys: list after adding');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    if (credentials.length !== 1 || !credentials[0].isResidentCredential) {
      fail(`passkeys: the authenticator holds ${JSON.stringify(credentials.map((c) => c.isResidentCredential))}, expected one resident credential`);
    }
    await page.locator('#passkeys-card').scrollIntoViewIfNeeded();
    await s.shot('passkey-added');

    // Sign out, sign in with the passkey alone.
    await logout(page, 'passkeys: logout');
    await page.click('#pk-login');
    await expectText(page, '#whoami', `Signed in as ${email}`, 'passkeys: sign in with the passkey');
    await s.shot('passkey-sign-in');

    // TOTP on; a password login asks MFA_REQUIRED, and the passkey answers it.
    await page.click('#mfa-setup');
    await expectVisible(page, '#mfa-qr-panel', 'passkeys: MFA setup');
    const secret = (await text(page, '#mfa-secret')).trim();
    await page.fill('#mfa-code', totp(secret, nowStep()));
    await page.click('#mfa-verify');
    await expectVisible(page, '#backup-panel', 'passkeys: MFA enrolment');
    await page.click('#backup-done');
    await logout(page, 'passkeys: logout before the MFA login');
    await login(page, email, PASSWORD);
    await expectText(page, '#ch-name', 'MFA_REQUIRED', 'passkeys: password login with MFA on');
    await page.selectOption('#ch-method', 'passkey');
    await expectHidden(page, '#ch-code-row', 'passkeys: no code for a passkey answer');
    await s.shot('passkey-mfa-required');
    await page.click('#ch-go');
    await expectText(page, '#whoami', `Signed in as ${email}`, 'passkeys: MFA_REQUIRED answered with the passkey');

    // Rename, then remove (with the password).
    await page.fill('#pk-name', 'Renamed key');
    await page.locator('[data-testid=passkey-row]').getByRole('button', { name: 'Rename' }).click();
    await expectText(page, '#pk-msg', 'Passkey renamed to "Renamed key"', 'passkeys: rename');
    await expectText(page, '[data-testid=passkey-row]', 'Renamed key', 'passkeys: renamed row');
    await page.fill('#pk-password', PASSWORD);
    await page.locator('[data-testid=passkey-row]').getByRole('button', { name: 'Remove' }).click();
    await expectText(page, '#pk-msg', 'removed', 'passkeys: remove');
    await expectText(page, '#pk-count', '0 passkeys', 'passkeys: list after removing');
    await s.shot('passkey-removed');
    if (pageErrors.length) fail(`the page threw: ${pageErrors.join('; ')}`);
  } catch (e) {
    await s.failShot();
    throw e;
  } finally {
    await context.close();
  }
}

// ---- social login ----------------------------------------------------------------------------
// The real OpenID Connect provider of tests/oidc (panva's oidc-provider), signing in every
// request as SOCIAL_EMAIL with its email verified.
const SOCIAL_EMAIL = 'social.walker@example.com';
async function startOidcProvider() {
  const child = spawn('node', ['provider.mjs'], {
    cwd: join(repo, 'tests/oidc'),
    env: { ...process.env, OIDC_DEFAULT_LOGIN_HINT: SOCIAL_EMAIL },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  servers.push(child);
  const line = await new Promise((resolveLine, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolveLine(out.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Failure(`the OIDC provider exited (${code}); run npm ci in tests/oidc`)));
  });
  return JSON.parse(line).issuer;
}
function socialEnv(issuer) {
  return {
    NAUTH_SOCIAL__LOCAL__KIND: 'oidc',
    NAUTH_SOCIAL__LOCAL__ISSUER: issuer,
    NAUTH_SOCIAL__LOCAL__CLIENT_ID: 'nauth-test',
    NAUTH_SOCIAL__LOCAL__CLIENT_SECRET: 'nauth-test-secret',
    NAUTH_SOCIAL__LOCAL__LABEL: 'Local OIDC',
  };
}
// Sign in with the provider's button: a new account is made for the provider's verified email
// (cookie delivery: the callback sets the cookies and goes back to the page), then signed out
// and in again through the same identity.
async function socialWalk(browser, app, server) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const s = steps(page, app, 70);
  try {
    await open(page, server.base);
    const button = page.locator('[data-provider=local]');
    await expectVisible(page, '[data-provider=local]', 'social: the provider button');
    await s.shot('social-button');
    await button.click();
    await expectText(page, '#whoami', `Signed in as ${SOCIAL_EMAIL}`, 'social: first sign-in makes the account');
    await s.shot('social-signed-in');
    await logout(page, 'social: logout');
    await page.locator('[data-provider=local]').click();
    await expectText(page, '#whoami', `Signed in as ${SOCIAL_EMAIL}`, 'social: the same identity signs in again');
    if (pageErrors.length) fail(`the page threw: ${pageErrors.join('; ')}`);
  } catch (e) {
    await s.failShot();
    throw e;
  } finally {
    await context.close();
  }
}

// ---- main ------------------------------------------------------------------------------------
const started = Date.now();
const watchdog = setTimeout(() => {
  console.error(`FAIL the suite did not finish within ${SUITE_LIMIT / 60_000} minutes`);
  killServers();
  process.exit(1);
}, SUITE_LIMIT);
const dbRoot = join(tmpdir(), `nauth-browser-${process.pid}`);
let browser;
try {
  for (const app of chosen) {
    if (!APPS.includes(app)) fail(`unknown app ${app}; expected one of ${APPS.join(', ')}`);
    rmSync(join(shotsRoot, app), { recursive: true, force: true });
    mkdirSync(join(shotsRoot, app), { recursive: true });
  }
  const running = {};
  const issuer = await startOidcProvider();
  for (const app of chosen) {
    const dir = join(dbRoot, app);
    mkdirSync(dir, { recursive: true });
    running[app] = await startServer(app, await freePort(), dir, 'server', socialEnv(issuer));
    // The same app with MFA mandatory, for the MFA_SETUP_REQUIRED challenge.
    running[app].enforced = await startServer(app, await freePort(), dir, 'server-mfa-required',
      { NAUTH_MFA__ENFORCEMENT: 'required' });
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // `localhost` is the apps' passkey origin; they listen on 127.0.0.1 only.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--host-resolver-rules=MAP localhost 127.0.0.1',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  for (const app of chosen) {
    const t = Date.now();
    try {
      await walk(browser, app, running[app]);
      await passkeyWalk(browser, app, running[app]);
      await socialWalk(browser, app, running[app]);
    } catch (e) {
      e.message = `${app}: ${e.message}`;
      throw e;
    }
    console.log(`ok   ${app}: the demo walk passed in ${((Date.now() - t) / 1000).toFixed(1)} s; screenshots in target/browser/${app}/`);
  }
  console.log(`browser suite passed (${chosen.join(', ')}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.error(`FAIL ${e instanceof Failure ? e.message : e.stack || e}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  killServers();
  rmSync(dbRoot, { recursive: true, force: true });
  clearTimeout(watchdog);
}
