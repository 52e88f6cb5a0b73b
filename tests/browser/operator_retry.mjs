// An operator retries a parked order in the stock Temporal Web UI, in headless Chromium driven
// by Playwright (tests/browser.rs starts everything and runs this script):
//
//   1. the workflow list, filtered through the UI's own query input: OrderState="NeedsOperator"
//      (the parked order is listed, an order in another state is not);
//   2. the parked order's page, "More Actions" → "Send an Update";
//   3. each malformed input typed into the dialog is refused there with its reason, the dialog
//      staying open (then cancelled);
//   4. the valid input is accepted: the dialog closes and the UI says "Update successful".
//
// Environment:
//   PROCURE_UI_URL              the Web UI, e.g. http://127.0.0.1:8233 (required)
//   PROCURE_WORKFLOW_ID         the parked order's workflow id (required)
//   PROCURE_OTHER_WORKFLOW_ID   an order not in NeedsOperator, which the filter must hide
//   PROCURE_UPDATE_NAME         default retry_procurement
//   PROCURE_RETRY_INPUT         the valid input, default {}
//   PROCURE_MALFORMED_INPUTS    JSON array of {"input": "<typed text>", "reason": "<expected
//                               part of the refusal>"}, default {"max_unit_fen": "abc"}
//   PROCURE_SCREENSHOT_DIR      where the PNGs go, default target/browser
//   PROCURE_CHROMIUM            default /usr/bin/chromium
//   PROCURE_NAMESPACE           default default
//   PROCURE_BROWSER_CHECK       retry (the steps above, default) or completed (the order's page
//                               shows it Completed, once the test has driven it to the end)
//
// Prints one line per step; exits 0 when every step held, 1 with the reason (and a screenshot
// failure.png) otherwise. Every wait is bounded, and the whole run by PROCURE_BROWSER_DEADLINE_S
// (default 180 s).

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const STEP_TIMEOUT_MS = 20_000;
const NAVIGATION_TIMEOUT_MS = 30_000;
/// How long a list may take to show what visibility already holds (the UI may need a refresh).
const LIST_TIMEOUT_MS = 30_000;

class StepFailed extends Error {}

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`operator_retry: ${name} is not set`);
    process.exit(1);
  }
  return v;
}

const ui = required('PROCURE_UI_URL').replace(/\/+$/, '');
const workflowId = required('PROCURE_WORKFLOW_ID');
const otherWorkflowId = process.env.PROCURE_OTHER_WORKFLOW_ID || '';
const namespace = process.env.PROCURE_NAMESPACE || 'default';
const updateName = process.env.PROCURE_UPDATE_NAME || 'retry_procurement';
const retryInput = process.env.PROCURE_RETRY_INPUT || '{}';
const malformed = JSON.parse(
  process.env.PROCURE_MALFORMED_INPUTS ||
    JSON.stringify([{ input: '{"max_unit_fen": "abc"}', reason: 'max_unit_fen' }]),
);
const shots = resolve(process.env.PROCURE_SCREENSHOT_DIR || 'target/browser');
const executablePath = process.env.PROCURE_CHROMIUM || '/usr/bin/chromium';
const deadlineS = Number(process.env.PROCURE_BROWSER_DEADLINE_S || 180);
const query = 'OrderState="NeedsOperator"';
const check = process.env.PROCURE_BROWSER_CHECK || 'retry';

const say = (msg) => console.log(`operator_retry: ${msg}`);
const fail = (msg) => {
  throw new StepFailed(msg);
};

mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'procure-chromium-'));
let context;

const watchdog = setTimeout(async () => {
  console.error(`operator_retry: FAILED: the run took longer than ${deadlineS} s`);
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}, deadlineS * 1000);

async function shot(page, name) {
  const path = join(shots, name);
  await page.screenshot({ path, timeout: STEP_TIMEOUT_MS });
  say(`screenshot ${path}`);
}

/// A link to the workflow in the list (its id is the link text).
const listLink = (page, id) => page.getByRole('link', { name: id, exact: true });

/// Waits until `id` is listed, pressing the list's Refresh while it is not.
async function waitListed(page, id) {
  const until = Date.now() + LIST_TIMEOUT_MS;
  for (;;) {
    try {
      await listLink(page, id).first().waitFor({ state: 'visible', timeout: 3_000 });
      return;
    } catch {
      if (Date.now() > until) fail(`${id} is not in the workflow list after ${LIST_TIMEOUT_MS} ms`);
      await page.getByRole('button', { name: 'Refresh', exact: true }).first().click();
    }
  }
}

/// Replaces the content of the dialog's JSON editor (CodeMirror) with `text`, as pasted.
async function setData(page, dialog, text) {
  const editor = dialog.getByRole('textbox', { name: 'Data' });
  await editor.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
  const shown = (await editor.innerText()).replace(/\s+/g, '');
  if (shown !== text.replace(/\s+/g, '')) fail(`the Data editor shows ${JSON.stringify(shown)} after typing ${JSON.stringify(text)}`);
}

/// Types the update name. The UI offers a list of names only when the workflow's
/// __temporal_workflow_metadata query names its updates; the Rust SDK's names none, so the
/// dialog shows a free-text Name field.
async function setName(dialog) {
  const input = dialog.getByTestId('update-name');
  await input.fill(updateName);
  const value = await input.inputValue();
  if (value !== updateName) fail(`the update name field holds ${JSON.stringify(value)}, not ${updateName}`);
}

/// The refusal the dialog shows after Submit, or null when the dialog closed (accepted). The
/// dialog is a fresh one, so any error in it is this submit's ("In Progress" is not an error).
async function submit(page, dialog) {
  await dialog.getByTestId('confirm-modal-button').click();
  const until = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    if (!(await dialog.isVisible())) return null;
    const alerts = (await dialog.getByRole('alert').allInnerTexts())
      .map((t) => t.trim())
      .filter((t) => t && !/^In Progress/i.test(t));
    if (alerts.length > 0) return alerts.join(' | ');
    if (Date.now() > until) fail(`the dialog neither closed nor showed an error ${STEP_TIMEOUT_MS} ms after Submit`);
    await page.waitForTimeout(100);
  }
}

/// More Actions → "Send an Update" on the order's page: the dialog, its name typed.
async function openUpdateDialog(page) {
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.getByRole('menuitem', { name: 'Send an Update' }).click();
  const dialog = page.getByRole('dialog', { name: 'Send an Update' });
  await dialog.waitFor({ state: 'visible' });
  await setName(dialog);
  return dialog;
}

async function run() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
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
    viewport: { width: 1400, height: 900 },
    timeout: NAVIGATION_TIMEOUT_MS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT_MS);
  try {
    if (check === 'completed') await showsCompleted(page);
    else await retries(page);
  } catch (err) {
    await shot(page, 'failure.png').catch(() => {});
    throw err;
  }
}

/// The parked order, from the filtered list to the accepted retry.
async function retries(page) {
  // 1. The workflow list, filtered in the UI.
  await page.goto(`${ui}/namespaces/${encodeURIComponent(namespace)}/workflows`);
  await waitListed(page, workflowId);
  if (otherWorkflowId) await waitListed(page, otherWorkflowId);
  await page.getByTestId('toggle-manual-query').click();
  const search = page.getByTestId('workflow-manual-search-input');
  await search.fill(query);
  await page.getByTestId('workflow-manual-search-button').click();
  await page.waitForURL((u) => new URL(u).searchParams.get('query') === query);
  await waitListed(page, workflowId);
  if (otherWorkflowId) {
    await listLink(page, otherWorkflowId)
      .first()
      .waitFor({ state: 'hidden' })
      .catch(() => fail(`${otherWorkflowId} (not in NeedsOperator) is still listed under ${query}`));
  }
  say(`the list filtered by ${query} shows ${workflowId}${otherWorkflowId ? ` and hides ${otherWorkflowId}` : ''}`);
  await shot(page, '01-filtered-list.png');

  // 2. The order's page.
  await listLink(page, workflowId).first().click();
  await page.waitForURL((u) => new URL(u).pathname.includes(`/workflows/${encodeURIComponent(workflowId)}`));
  say(`opened ${workflowId} from the list`);

  // 3. Each malformed input, typed into a fresh dialog, is refused there with its reason; the
  //    dialog stays open until the operator cancels it.
  for (const [i, { input, reason }] of malformed.entries()) {
    const dialog = await openUpdateDialog(page);
    await setData(page, dialog, input);
    const refusal = await submit(page, dialog);
    if (refusal === null) fail(`the malformed input ${input} was accepted (the dialog closed)`);
    if (/no update handler/i.test(refusal)) fail(`${workflowId} has no update ${updateName}: ${refusal}`);
    if (reason && !refusal.includes(reason)) fail(`the refusal of ${input} does not say ${JSON.stringify(reason)}: ${refusal}`);
    say(`malformed input ${input} refused in the dialog: ${refusal}`);
    if (i === 0) await shot(page, '02-dialog-malformed-refused.png');
    await dialog.getByTestId('cancel-modal-button').click();
    await dialog.waitFor({ state: 'hidden' });
  }

  // 4. The valid retry.
  const dialog = await openUpdateDialog(page);
  await setData(page, dialog, retryInput);
  await shot(page, '03-dialog-retry-before.png');
  const refusal = await submit(page, dialog);
  if (refusal !== null) fail(`the retry ${retryInput} was refused: ${refusal}`);
  await page
    .getByText('Update successful', { exact: true })
    .first()
    .waitFor({ state: 'visible' })
    .catch(() => fail('the dialog closed, but the UI did not say "Update successful"'));
  say(`retry ${retryInput} accepted: the dialog closed, the UI says "Update successful"`);
  await shot(page, '04-after-retry.png');
}

/// The order's page once the test has driven it to the end: the UI shows it Completed.
async function showsCompleted(page) {
  await page.goto(`${ui}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`);
  const status = page.getByTestId('execution-status').first();
  await status
    .getByText('Completed', { exact: true })
    .waitFor({ state: 'visible' })
    .catch(async () => fail(`the UI shows ${workflowId} as ${JSON.stringify(await status.textContent({ timeout: 1_000 }).catch(() => null))}, not Completed`));
  say(`the UI shows ${workflowId} Completed`);
  await shot(page, '05-completed.png');
}

try {
  await run();
  say('ok');
  process.exitCode = 0;
} catch (err) {
  console.error(`operator_retry: FAILED: ${err instanceof StepFailed ? err.message : err.stack || err}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
