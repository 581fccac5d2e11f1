/**
 * Browser tests of the console: Debian's Chromium (never a downloaded browser) driven by
 * playwright-core, against a Herald API listening on a loopback port with a real sequencer,
 * delivery worker and webhook receiver. Screenshots for docs/console.md are refreshed with HERALD_UPDATE_SCREENSHOTS=1.
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { chromium } from "playwright-core";
import type { ApiWithEngine } from "../e2e/api-with-engine.js";
import { startApiWithEngine } from "../e2e/api-with-engine.js";
import { TEST_ADMIN_KEY } from "./test-app.js";
import type { Backend } from "./test-database.js";

export const CHROMIUM_PATH = process.env.HERALD_TEST_CHROMIUM ?? "/usr/bin/chromium";
/**
 * Where screenshots go: docs/console/ when HERALD_UPDATE_SCREENSHOTS=1 (to refresh the ones
 * docs/console.md shows), else a directory of the system's temporary files, so that a test run
 * does not rewrite tracked files.
 */
export const SCREENSHOT_DIR =
  process.env.HERALD_UPDATE_SCREENSHOTS === "1"
    ? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "console")
    : join(tmpdir(), "herald-console-screenshots");

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumUnavailable(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does it)`;
}

/** Chromium as the machine allows it: headless, no sandbox as root, no background traffic. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

export interface ConsoleServer {
  engine: ApiWithEngine;
  /** `http://127.0.0.1:<port>`. */
  baseUrl: string;
  close(): Promise<void>;
}

/** The API, sequencer and a delivery worker on a fresh test database, listening on loopback. */
export async function startConsoleServer(backend: Backend): Promise<ConsoleServer> {
  const engine = await startApiWithEngine(backend, `console-${backend}`);
  const address = await engine.app.app.listen({ port: 0, host: "127.0.0.1" });
  return { engine, baseUrl: address, close: () => engine.close() };
}

/** Signs in through the sign-in form; the page is left on the console's home. */
export async function signIn(page: Page, baseUrl: string, apiKey = TEST_ADMIN_KEY): Promise<void> {
  await page.goto(`${baseUrl}/ui/sign-in`);
  await page.getByLabel("API key").fill(apiKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${baseUrl}/ui`);
}

/** A desktop-sized context, or a 390-pixel-wide phone one. */
export async function newContext(
  browser: Browser,
  size: "desktop" | "phone" = "desktop",
): Promise<BrowserContext> {
  return browser.newContext(
    size === "phone"
      ? {
          viewport: { width: 390, height: 844 },
          deviceScaleFactor: 2,
          isMobile: true,
          hasTouch: true,
        }
      : { viewport: { width: 1280, height: 800 } },
  );
}

/** Saves a screenshot as <name>.png in SCREENSHOT_DIR (docs/console/ when refreshing the docs). */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/** Whether the page scrolls sideways (its content is wider than the viewport). */
export async function scrollsSideways(page: Page): Promise<boolean> {
  // A string: the test files are compiled without the DOM's types.
  return page.evaluate<boolean>(
    "document.documentElement.scrollWidth > document.documentElement.clientWidth + 1",
  );
}

/**
 * Collects script errors, CSP violations and assets that failed to load, which a test asserts are
 * none. A page answered 4xx on purpose (a refused form, a wrong key) is not one: the browser logs
 * its status as "Failed to load resource", which is left out here.
 */
export function watchPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    if (message.text().startsWith("Failed to load resource: the server responded with a status"))
      return;
    errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("response", (response) => {
    const kind = response.request().resourceType();
    if (response.status() >= 400 && ["script", "stylesheet", "image", "font"].includes(kind))
      errors.push(`${kind} ${response.url()} answered ${response.status()}`);
  });
  return errors;
}
