/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core): against
 * `npm run demo` as a visitor would see it, signed in as the user the demo prints (live values, a
 * bad point by colour and word, the relay state, a setpoint written from the page to the Modbus PLC
 * and one refused, at 1280x720 and at a phone's 390x844, then Ctrl-C with nothing left running),
 * and against an in-process plant whose relay goes away and comes back, and one whose device sends
 * markup as a string value (shown as text, never run), and one whose API has named users (a
 * sign-in; a read user sees no write control, a write user writes). Screenshots go to tmp/ (npm
 * run test:dashboard).
 */
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import {
  addApiUser,
  createApiPlant,
  IT,
  REGISTERS,
  SPEED,
  type ApiPlant,
} from '../agents/it/api/api-plant.ts';
import { spawnChild, stopChild } from '../support/child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(ROOT, 'tmp');
/** playwright's waits: a loaded machine starts chromium and the demo slowly. */
const UI_TIMEOUT_MS = 60_000;
/** The demo stops its relay and agents within 17 s (deploy/demo/commands.ts); room beyond. */
const DEMO_STOP_BOUND_MS = 30_000;
/** Skipped without chromium on a developer's machine; under CI (.ci/run installs it) it must run. */
const SKIP = !existsSync(CHROMIUM) && process.env.CI !== 'true' && `no ${CHROMIUM}: apt-get install chromium`;
const RED = 'rgb(248, 81, 73)';
const GREEN = 'rgb(63, 185, 80)';

interface Browser {
  readonly context: BrowserContext;
  /** Closes chromium, then removes its profile. */
  close(): Promise<void>;
}

/**
 * An `after` hook's cleanup: the browser, then the rest whatever the browser does, so that the
 * plant or demo stops even when the start failed before the browser was up (no chromium).
 */
async function closeBrowserThen(browser: Browser | undefined, rest: () => Promise<void>): Promise<void> {
  try {
    await browser?.close();
  } finally {
    await rest();
  }
}

async function launchBrowser(): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'dmz-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 720 },
  });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** A computed style, asked in the page's own words (this project's types know no DOM). */
function computed(page: Page, selector: string, property: 'color' | 'backgroundColor'): Promise<string> {
  return page.evaluate<string>(
    `getComputedStyle(document.querySelector(${JSON.stringify(selector)})).${property}`,
  );
}
const inRow = (topic: string, part: string) => `.point[data-topic="${topic}"] ${part}`;

const row = (page: Page, topic: string) => page.locator(`.point[data-topic="${topic}"]`);

/** Fills the page's own sign-in form (basic auth: a user name and its password). */
async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.locator('#login').waitFor();
  await page.locator('#login-user').fill(user);
  await page.locator('#login-secret').fill(password);
  await page.locator('#login button').click();
}

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name), fullPage: true });
}

describe('dashboard - npm run demo in a real browser', { skip: SKIP }, () => {
  let dir: string;
  let demo: ChildProcess;
  let output = '';
  const problems: string[] = [];
  let url: string;
  let browser: Browser;
  let page: Page;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-dashboard-'));
    const port = await freePort();
    demo = spawnChild(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'deploy', 'demo.ts'),
        '--dir',
        join(dir, 'demo'),
        '--port',
        String(port),
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    demo.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    demo.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // The dashboard, then whom to sign in as: the API takes a write from a named user of role write
    // alone, and the demo makes one, with a new password each run.
    const [, dashboard = '', user = '', password = ''] = await waitFor(
      () => /dashboard: (http:\/\/\S+)\n +sign in: +(\S+), password (\S+)/.exec(output) ?? undefined,
      "the demo's dashboard and sign-in lines",
      120_000,
      100,
    );
    url = dashboard;
    browser = await launchBrowser();
    page = await browser.context.newPage();
    // A blocked script or style (the Content-Security-Policy) or a script error shows here; the
    // first requests' 401, which brings up the sign-in form, is what the page expects.
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('status of 401'))
        problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(url);
    await signIn(page, user, password);
  });
  after(() =>
    closeBrowserThen(browser, async () => {
      await stopChild(demo, DEMO_STOP_BOUND_MS);
      await rm(dir, { recursive: true, force: true });
    }),
  );

  it('shows live values changing, the relay and the OT agent connected, a bad point by colour and word', async () => {
    const temperature = row(page, 'press-7/plc/temperature').locator('.figure');
    await temperature.waitFor();
    const first = await temperature.textContent();
    await waitFor(
      async () => (await temperature.textContent()) !== first,
      'the temperature to change on screen',
      UI_TIMEOUT_MS,
      100,
    );
    const relay = page.locator('#relay-state');
    await waitFor(
      async () => (await relay.textContent())?.includes('CONNECTED'),
      'relay CONNECTED',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(await relay.getAttribute('data-state'), 'good');
    assert.match((await page.locator('#peer-states').textContent()) ?? '', /press-7\s*LIVE/);
    const vibration = row(page, 'press-7/plc/vibration');
    assert.equal(await vibration.locator('.badge').textContent(), 'BAD');
    assert.match((await vibration.locator('.reason').textContent()) ?? '', /Modbus exception 2/);
    assert.equal(await computed(page, inRow('press-7/plc/vibration', '.badge'), 'backgroundColor'), RED);
    const good = row(page, 'press-7/plc/temperature').locator('.badge');
    assert.equal(await good.textContent(), 'GOOD');
    assert.equal(await computed(page, inRow('press-7/plc/temperature', '.badge'), 'backgroundColor'), GREEN);
    assert.match((await row(page, 'press-7/plc/temperature').locator('.unit').textContent()) ?? '', /degC/);
    // Rows stay in topic order: nothing jumps around.
    const topics = await page.evaluate<string[]>(
      "[...document.querySelectorAll('.point')].map((node) => node.dataset.topic)",
    );
    assert.deepEqual(topics, [...topics].sort());
    await screenshot(page, 'dashboard-1280x720.png');
    assert.deepEqual(problems, [], 'the page ran without an error');
  });

  it('writes the setpoint from the page: the PLC takes it and reports it back, the page says done', async () => {
    const setpoint = row(page, 'press-7/plc/speed-setpoint');
    await setpoint.locator('input').fill('90');
    await setpoint.locator('button').click();
    await waitFor(
      async () => (await setpoint.locator('.outcome').textContent())?.startsWith('DONE'),
      'DONE',
      UI_TIMEOUT_MS,
      100,
    );
    // The value on screen is read back from the Modbus server by the OT agent: the write landed.
    await waitFor(
      async () => (await setpoint.locator('.figure').textContent()) === '90',
      'setpoint 90 read back',
      UI_TIMEOUT_MS,
      100,
    );
    await waitFor(
      async () => Number(await row(page, 'press-7/plc/speed').locator('.figure').textContent()) > 60,
      'the speed to follow',
      UI_TIMEOUT_MS,
      100,
    );
  });

  it("shows a refused write and why: the press's range is its own", async () => {
    const setpoint = row(page, 'press-7/plc/speed-setpoint');
    await setpoint.locator('input').fill('500');
    await setpoint.locator('button').click();
    const outcome = setpoint.locator('.outcome');
    await waitFor(
      async () => (await outcome.textContent())?.startsWith('REFUSED'),
      'REFUSED',
      UI_TIMEOUT_MS,
      100,
    );
    assert.match((await outcome.textContent()) ?? '', /AGENT_ERR_WRITE_OUT_OF_RANGE/);
    assert.equal(await computed(page, inRow('press-7/plc/speed-setpoint', '.outcome'), 'color'), RED);
    assert.equal(await setpoint.locator('.figure').textContent(), '90');
    await screenshot(page, 'dashboard-write-refused.png');
  });

  it('fits a phone (390x844): no sideways scrolling, every point a card', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await waitFor(
      async () => (await page.evaluate<number>('document.documentElement.scrollWidth')) <= 390,
      'no horizontal overflow',
      UI_TIMEOUT_MS,
      100,
    );
    const box = await row(page, 'press-7/plc/temperature').boundingBox();
    assert.ok(box !== null && box.width <= 390, `a card ${box?.width} px wide`);
    // The trends are redrawn to the cards' width (within a second: they redraw at most that often).
    await waitFor(
      async () =>
        page.evaluate<boolean>(
          "[...document.querySelectorAll('.point .trend')].every((cell) => !cell.querySelector('.uplot') || Math.abs(cell.querySelector('.uplot').offsetWidth - cell.clientWidth) <= 1)",
        ),
      'trends as wide as their cards',
      UI_TIMEOUT_MS,
      100,
    );
    await screenshot(page, 'dashboard-390x844.png');
  });

  it('stops everything on Ctrl-C, leaving no process behind', async () => {
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    demo.kill('SIGINT');
    assert.equal(await exited, 130);
    // Every process the demo started has its directory on its command line.
    const left = spawnSync('pgrep', ['-f', join(dir, 'demo')], { encoding: 'utf8' });
    assert.equal(left.stdout.trim(), '', `still running: ${left.stdout}`);
  });
});

describe('dashboard - the relay going away and coming back', { skip: SKIP }, () => {
  let plant: ApiPlant;
  let browser: Browser;
  let page: Page;
  before(async () => {
    plant = await createApiPlant();
    const it_ = await plant.startIt();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.goto(it_.api!.url);
  });
  after(() => closeBrowserThen(browser, () => plant.close()));

  it('shows DISCONNECTED with a banner while the relay is down, then CONNECTED and live again', async () => {
    const relay = page.locator('#relay-state');
    await waitFor(
      async () => (await relay.getAttribute('data-state')) === 'good',
      'connected',
      UI_TIMEOUT_MS,
      100,
    );
    await plant.plant.stopRelay();
    await waitFor(
      async () => (await relay.textContent())?.includes('DISCONNECTED'),
      'DISCONNECTED',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(await relay.getAttribute('data-state'), 'bad');
    assert.match((await page.locator('#banner').textContent()) ?? '', /Relay disconnected/);
    await screenshot(page, 'dashboard-relay-down.png');
    await plant.plant.startRelay();
    await waitFor(
      async () => (await relay.getAttribute('data-state')) === 'good',
      'CONNECTED again',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(await page.locator('#banner').isHidden(), true);
    // Live again: a value changed at the device reaches the page.
    plant.device.setHolding(REGISTERS.speed, [99]);
    await waitFor(
      async () => (await row(page, 'press-7/plc/speed').locator('.figure').textContent()) === '99',
      'speed 99 on screen',
      UI_TIMEOUT_MS,
      100,
    );
  });
});

describe('dashboard - named users: sign-in, and write controls for role write alone', { skip: SKIP }, () => {
  const PASSWORDS = { ada: 'ada lovelace 1815', ben: 'ben franklin 1706' } as const;
  let plant: ApiPlant;
  let url: string;
  let browser: Browser;
  before(async () => {
    plant = await createApiPlant({
      writes: { points: [{ point: 'plc/speed', type: 'number', min: 0, max: 120, writers: [IT] }] },
    });
    const dir = join(plant.plant.dir, 'api-users');
    await mkdir(dir, { mode: 0o700 });
    const users = [
      await addApiUser(dir, 'ada', 'write', { password: PASSWORDS.ada }),
      await addApiUser(dir, 'ben', 'read', { password: PASSWORDS.ben }),
    ];
    const it_ = await plant.startIt({ users, writable: [{ filter: SPEED, type: 'number' }] });
    url = it_.api!.url;
    browser = await launchBrowser();
  });
  after(() => closeBrowserThen(browser, () => plant.close()));

  it('asks for a user name and password; a wrong password is not accepted and shows no data', async () => {
    const page = await browser.context.newPage();
    await page.goto(url);
    await page.locator('#login').waitFor();
    assert.match((await page.locator('#login-prompt').textContent()) ?? '', /user name and password/);
    await signIn(page, 'ben', 'ben franklin 1707');
    await waitFor(
      async () => /^Not accepted/.test((await page.locator('#login-prompt').textContent()) ?? ''),
      'Not accepted',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(await page.locator('.point').count(), 0);
    await screenshot(page, 'dashboard-sign-in.png');
    await page.close();
  });

  it('shows a read user the values and no write control; the header names the user and the role', async () => {
    const page = await browser.context.newPage();
    await page.goto(url);
    await signIn(page, 'ben', PASSWORDS.ben);
    await row(page, SPEED).locator('.figure').waitFor();
    await waitFor(
      async () => (await page.locator('#caller').textContent()) === 'ben · READ',
      'ben · READ',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(await page.locator('#login').isHidden(), true);
    assert.equal(await row(page, SPEED).locator('form.control').count(), 0);
    await screenshot(page, 'dashboard-read-user.png');
    await page.close();
  });

  it('gives a write user the control, and the write reaches the device', async () => {
    const page = await browser.context.newPage();
    await page.goto(url);
    await signIn(page, 'ada', PASSWORDS.ada);
    const speed = row(page, SPEED);
    await speed.locator('form.control').waitFor();
    assert.equal(await page.locator('#caller').textContent(), 'ada · WRITE');
    await speed.locator('input').fill('42');
    await speed.locator('button').click();
    await waitFor(
      async () => (await speed.locator('.outcome').textContent())?.startsWith('DONE'),
      'DONE',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(plant.device.holding[REGISTERS.speed], 42);
    await screenshot(page, 'dashboard-write-user.png');
    await page.close();
  });

  it('signs out: the credentials leave the tab, the values and the control with them; the page asks again', async () => {
    const page = await browser.context.newPage();
    await page.goto(url);
    await signIn(page, 'ada', PASSWORDS.ada);
    await row(page, SPEED).locator('form.control').waitFor();
    // What the page loaded by the sign-out asks for (one of the old page's may still be on its way).
    const sentAfter: string[] = [];
    let reloaded = false;
    page.on('framenavigated', (frame) => (reloaded ||= frame === page.mainFrame()));
    page.on('request', (sent) => {
      if (reloaded && sent.headers().authorization !== undefined) sentAfter.push(sent.url());
    });
    await page.locator('#sign-out').click();
    await page.locator('#login').waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    assert.equal(await page.locator('.point').count(), 0);
    assert.equal(await page.locator('form.control').count(), 0);
    assert.equal(await page.locator('#sign-out').isHidden(), true);
    assert.deepEqual(sentAfter, [], 'no request after sign-out carries the credentials');
    await page.close();
  });
});

/** Markup a compromised device could put in a string register: it must show as text and run nothing. */
const MARKUP = '<img src=x onerror="window.pwned=1"><b>HOT</b>';
/** Registers for `text`, two Latin-1 characters each, high byte first (register-decoding.ts). */
function stringRegisters(text: string, registers: number): number[] {
  const bytes = Buffer.alloc(registers * 2);
  bytes.write(text, 'latin1');
  return Array.from({ length: registers }, (_, index) => bytes.readUInt16BE(index * 2));
}

describe('dashboard - values from the OT side are text, never markup', { skip: SKIP }, () => {
  const LABEL = 'press-7/plc/label';
  const LABEL_REGISTER = 10;
  const LABEL_REGISTERS = 32;
  let plant: ApiPlant;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  before(async () => {
    plant = await createApiPlant({
      points: [
        { name: 'label', table: 'holding', address: LABEL_REGISTER, type: 'string', length: LABEL_REGISTERS },
      ],
    });
    plant.device.setHolding(LABEL_REGISTER, stringRegisters(MARKUP, LABEL_REGISTERS));
    const it_ = await plant.startIt();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    // A script the policy blocked (an inline handler) shows here as well as one that ran.
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(it_.api!.url);
  });
  after(() => closeBrowserThen(browser, () => plant.close()));

  it('shows a string value of markup as its characters, in the row and live; no element, no script', async () => {
    const figure = row(page, LABEL).locator('.figure');
    await waitFor(
      async () => (await figure.textContent()) === MARKUP,
      'the markup as text',
      UI_TIMEOUT_MS,
      100,
    );
    // Live as well: the stream's value replaces the first one the same way.
    const live = '<script>window.pwned=2</script><svg onload="window.pwned=3">';
    plant.device.setHolding(LABEL_REGISTER, stringRegisters(live, LABEL_REGISTERS));
    await waitFor(
      async () => (await figure.textContent()) === live,
      'the live markup as text',
      UI_TIMEOUT_MS,
      100,
    );
    assert.equal(await page.evaluate<unknown>('window.pwned'), undefined);
    assert.equal(
      await page.evaluate<number>(
        "document.querySelectorAll('#points img, #points b, #points script, #points svg').length",
      ),
      0,
    );
    // No point here is offered for writing (it.api.writable is empty): no control anywhere.
    assert.equal(await page.locator('form.control').count(), 0);
    await screenshot(page, 'dashboard-markup-as-text.png');
    assert.deepEqual(problems, [], 'nothing blocked, nothing failed: no markup was ever parsed');
  });

  it('serves the page and the API with headers that forbid framing, sniffing and outside loads', async () => {
    const answers = await page.evaluate<{ path: string; csp: string | null; sniff: string | null }[]>(
      `Promise.all(['/', '/dashboard/dashboard.js', '/api/v1/points'].map(async (path) => {
        const response = await fetch(path);
        return { path, csp: response.headers.get('content-security-policy'), sniff: response.headers.get('x-content-type-options') };
      }))`,
    );
    for (const { path, csp, sniff } of answers) {
      assert.match(csp ?? '', /default-src 'none'/, path);
      assert.match(csp ?? '', /frame-ancestors 'none'/, path);
      assert.equal(sniff, 'nosniff', path);
    }
  });
});
