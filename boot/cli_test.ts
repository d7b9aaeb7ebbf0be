import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { renderSvg } from "./svg.ts";
import { NO_LEAKS } from "./_test_util.ts";

const root = new URL("..", import.meta.url).pathname;
const isDeno = "Deno" in globalThis;
/**
 * A Deno child of this test process would inherit the test's permissions,
 * so every permission the flags do not grant is denied outright: what
 * boot.ts does under these flags, it does with none.
 */
const DENY = ["read", "write", "env", "net", "run", "ffi", "sys"].map((p) => `--deny-${p}`);

/** Runs `boot.ts` as a user would, with the runtime running this test; `allow` only under Deno. */
function boot(args: string[], allow: string[] = []) {
  const deny = DENY.filter((d) => !allow.some((a) => a.startsWith(d.replace("deny", "allow"))));
  const argv = isDeno ? ["run", ...deny, ...allow, "boot.ts", ...args] : ["boot.ts", ...args];
  const r = spawnSync(process.execPath, argv, { cwd: root, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("boot.ts: runs without permission flags and prints a summary that ends in ok", () => {
  const r = boot(["--memory", "64M", "-w", "ids", "-n", "200", "--devices", "none"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^firmware memory map \(pc\):/);
  assert.match(r.stdout, /kernel ready/);
  assert.match(r.stdout, /leaks +0 after shutdown/);
  assert.match(r.stdout, /\nok\n$/);
});

test("boot.ts: --json prints one JSON object with the summary", () => {
  const r = boot(["-m", "isa", "-w", "heap", "-n", "300", "--devices", "none", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.status, 0);
  assert.equal(out.summary.machine.preset, "isa");
  assert.deepEqual(out.summary.leaks, NO_LEAKS);
  assert.equal(out.workloads[0].name, "heap");
});

test("boot.ts: a bad flag or value is one line on stderr and exit status 2", () => {
  for (const args of [["--bogus"], ["-m", "vax"], ["--ops", "many"]]) {
    const r = boot(args);
    assert.equal(r.status, 2, args.join(" "));
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^boot\.ts: /);
  }
  const help = boot(["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: deno run boot.ts/);
});

test("boot.ts: --svg and --record-* write their files (Deno asks for those files only)", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-"));
  try {
    const svg = join(dir, "m.svg"), vm = join(dir, "v.jsonl"), pg = join(dir, "p.jsonl");
    const args = ["--memory", "64M", "-w", "pressure", "-n", "8", "--devices", "none", "-q"];
    const files = ["--svg", svg, "--record-vmem", vm, "--record-pglist", pg];
    const r = boot([...args, ...files], [`--allow-write=${svg},${vm},${pg}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "", "--quiet prints nothing");
    assert.match(readFileSync(svg, "utf8"), /^<svg [^>]*>[\s\S]*page cache[\s\S]*<\/svg>\n$/);
    assert.match(readFileSync(vm, "utf8"), /^\{"op":"create","arena":"heap"/);
    assert.match(readFileSync(pg, "utf8"), /^\{"op":"config"/);
    if (isDeno) {
      // Without write access the run is refused before it starts.
      rmSync(svg);
      const denied = boot([...args, "--svg", svg]);
      assert.equal(denied.status, 2);
      assert.match(denied.stderr, /--allow-write=/);
      assert.equal(existsSync(svg), false);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("boot.ts: --svg without a workload draws the machine as it booted", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-"));
  try {
    const svg = join(dir, "boot.svg");
    const r = boot(["-m", "isa", "-w", "none", "--svg", svg, "-q"], [`--allow-write=${svg}`]);
    assert.equal(r.status, 0, r.stderr);
    const text = readFileSync(svg, "utf8");
    assert.match(text, /isa machine after boot/);
    // The drivers' rings and bounce pages are page lists, drawn as such.
    assert.match(text, /DMA \/ page lists \([1-9]\d*\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("svg: each cell takes the state most of its frames are in", () => {
  const states = new Uint8Array(256 * 128 * 2); // two frames per cell
  states.fill(1, 0, 3); // cell 0: two of state 1; cell 1: one of 1, one of 0
  const text = renderSvg({
    title: "t",
    pageStates: states,
    styles: [{ name: "a", color: "#000001" }, { name: "b", color: "#000002" }],
    pageSize: 4096,
    arenas: [{
      name: "x",
      segs: [["span", 4096, 8192], ["alloc", 4096, 4096], ["free", 8192, 4096]],
    }],
  });
  assert.match(text, /2 frames per cell/);
  assert.match(text, /<path fill="#000002" d="M16 \d+h4v4h-4z"\/>/, "only cell 0 is state 1");
  assert.match(text, /a \(65533\)/);
  assert.match(text, /b \(3\)/);
  assert.match(text, /span 0x1000 8 KiB, 4 KiB allocated in 1 segments/);
});
