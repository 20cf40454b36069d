// Drives the dashboard (GET /ui) in Debian's headless Chromium: creates a
// proxy and adds a latency toxic from the page, checks the API saw them,
// sends traffic through the proxy, and waits for the page's counters to
// move and its journal to show the toxic acting. Exits 0, or 1 with why.
//   node dashboard.mjs API_URL BACKEND_PORT SCREENSHOT.png
import net from "node:net";
import { chromium } from "playwright-core";

const [api, backendPort, shot] = process.argv.slice(2);
const fail = (why) => { console.error("dashboard test: " + why); process.exit(1); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const timer = setTimeout(() => fail("timed out"), 90000);
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(api + "/ui");
  await page.waitForFunction(() => /proxies/.test(document.getElementById("status").textContent));

  // a proxy, from the page
  await page.fill("#create [name=name]", "cache");
  await page.fill("#create [name=upstream]", "127.0.0.1:" + backendPort);
  await page.selectOption("#create [name=protocol]", "redis");
  await page.click("#create button[type=submit]");
  const card = page.locator('.proxy[data-proxy="cache"]');
  await card.waitFor();

  // a latency toxic, from the page
  const form = card.locator("form.add-toxic");
  await form.locator("[name=type]").selectOption("latency");
  await form.locator('[data-attr="latency"]').fill("40");
  await form.locator("button[type=submit]").click();
  await card.locator('tr[data-toxic="latency_downstream"]').waitFor();

  // the API sees what the page did
  const proxies = await (await fetch(api + "/proxies")).json();
  const t = (proxies.cache && proxies.cache.toxics) || [];
  if (t.length !== 1 || t[0].type !== "latency" || t[0].attributes.latency !== 40)
    fail("GET /proxies shows " + JSON.stringify(proxies));
  console.log("toxic " + JSON.stringify(t[0]));

  // traffic through the proxy: PINGs, each held 40 ms on its way back
  const port = Number(proxies.cache.listen.split(":").pop());
  await new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let n = 0, buf = "";
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      buf += d;
      while (buf.includes("\r\n")) {
        buf = buf.slice(buf.indexOf("\r\n") + 2);
        if (++n === 10) { s.end(); resolve(); } else s.write("PING\r\n");
      }
    });
    s.on("error", reject);
  });

  // the counters move, the journal shows the toxic, the plot has a line
  await page.waitForFunction(() => {
    const b = document.querySelector('[data-counters="cache"] [data-counter="requests"]');
    return b && Number(b.textContent) >= 10;
  }, null, { timeout: 20000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#journal tr.toxic .fault-name")]
    .some((td) => td.textContent.startsWith("latency")), null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelector("#legend").textContent.includes("cache"),
    null, { timeout: 20000 });
  const requests = await page.textContent('[data-counters="cache"] [data-counter="requests"]');
  const rows = await page.locator("#journal tr.toxic").count();
  console.log("requests " + requests + ", journal rows " + rows);

  // remove the toxic from the page: the API has none left
  await card.locator('tr[data-toxic="latency_downstream"] button.remove').click();
  await page.waitForFunction(() => !document.querySelector('tr[data-toxic="latency_downstream"]'));
  const after = await (await fetch(api + "/proxies/cache/toxics")).json();
  if (after.length !== 0) fail("toxics left: " + JSON.stringify(after));

  if (errors.length) fail("page errors: " + errors.join("; "));
  await page.screenshot({ path: shot, fullPage: true });
  console.log("screenshot " + shot);
} catch (e) {
  fail(e.stack || String(e));
} finally {
  clearTimeout(timer);
  await browser.close();
}
