import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { VmemFreeBSDReplayer } from "./replay_vmem_freebsd.ts";
import { assertSameLines, byCode, replayGolden, replayLines } from "./_test_util.ts";

function replay(text: string): string[] {
  return replayLines(text, new VmemFreeBSDReplayer());
}

test("every golden vmem-freebsd trace replays exactly", () => {
  replayGolden("vmem-freebsd", 9, () => new VmemFreeBSDReplayer());
});

// The format's additions and refusals: a sleeping request that imports every
// page of its source, then would wait (undone, reclaim counts included); the
// limit; maxfree; unsupported words and ops; set_import's and destroy's
// refusals. The expected lines come from the seed built natively (where its
// code for an unknown arena, NOARENA, is ours, ENOENT).
const FORMAT_TRACE = `
{"op":"create","arena":"src","base":1048576,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}
{"op":"create","arena":"a","base":0,"size":0,"quantum":16,"qcache_max":0,"source":"src","flags":["identifier"]}
{"op":"set_reclaim","arena":"a","reclaim":true}
{"op":"set_reclaim","arena":"src","reclaim":true}
{"op":"alloc","arena":"a","size":100,"flags":["nosleep"]}
{"op":"xalloc","arena":"a","size":16,"align":0,"phase":0,"nocross":0,"minaddr":1073741824,"maxaddr":0,"flags":["sleep","firstfit"]}
{"op":"reclaims","arena":"a"}
{"op":"reclaims","arena":"src"}
{"op":"walk","arena":"a","types":["span"]}
{"op":"set_limit","arena":"a","limit":8192}
{"op":"xalloc","arena":"a","size":16,"align":0,"phase":0,"nocross":0,"minaddr":1073741824,"maxaddr":0,"flags":["nosleep"]}
{"op":"reclaims","arena":"a"}
{"op":"reclaims","arena":"src"}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"size","arena":"a","types":["maxfree"]}
{"op":"size","arena":"a","types":[]}
{"op":"size","arena":"a","types":["maxfree","free"]}
{"op":"contains","arena":"a","addr":1048576,"size":16}
{"op":"alloc","arena":"a","size":16,"flags":["nosleep","nextfit"]}
{"op":"alloc","arena":"a","size":16,"flags":["sleep","endalloc"]}
{"op":"alloc","arena":"a","size":16,"flags":["instantfit","bestfit","nosleep"]}
{"op":"set_import","arena":"a","source":"src","import_quantum":24}
{"op":"set_import","arena":"src","source":"a","import_quantum":4096}
{"op":"create","arena":"other","base":16777216,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}
{"op":"set_import","arena":"a","source":"other","import_quantum":4096}
{"op":"destroy","arena":"src"}
{"op":"free","arena":"a","addr":1048576,"size":97}
{"op":"free","arena":"a","addr":1048576,"size":113}
{"op":"free","arena":"a","addr":1048576,"size":112}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"set_import","arena":"a","source":"other","import_quantum":4096}
{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","firstfit"]}
{"op":"walk","arena":"src","types":["span","alloc","free"]}
{"op":"destroy","arena":"other"}
{"op":"free","arena":"a","addr":16777216,"size":4096}
{"op":"destroy","arena":"a"}
{"op":"destroy","arena":"other"}
{"op":"create","arena":"z","base":0,"size":4096,"quantum":4096,"qcache_max":0,"source":null,"flags":["no_qcache"]}
{"op":"alloc","arena":"z","size":1,"flags":["sleep"]}
{"op":"alloc","arena":"z","size":1,"flags":["sleep"]}
{"op":"create","arena":"q","base":0,"size":4096,"quantum":4096,"qcache_max":8192,"source":null,"flags":[]}
`;

const FORMAT_EXPECTED = `
{"ok":true}
{"ok":true}
{"ok":true}
{"ok":true}
{"addr":1048576}
{"error":"WOULDBLOCK"}
{"reclaims":0}
{"reclaims":0}
{"segs":[["span",1048576,4096]]}
{"ok":true}
{"addr":null}
{"reclaims":1}
{"reclaims":0}
{"segs":[["span",1048576,4096],["alloc",1048576,112],["free",1048688,3984],["span",1052672,4096],["free",1052672,4096]]}
{"size":4096}
{"error":"BADARG"}
{"error":"BADARG"}
{"error":"UNSUPPORTED"}
{"error":"UNSUPPORTED"}
{"error":"UNSUPPORTED"}
{"error":"BADARG"}
{"error":"BADARG"}
{"error":"BADARG"}
{"ok":true}
{"error":"BUSY"}
{"error":"BUSY"}
{"ok":true}
{"error":"BADFREE"}
{"error":"BADFREE"}
{"segs":[["span",1052672,4096],["free",1052672,4096]]}
{"error":"BUSY"}
{"addr":1052672}
{"segs":[["span",1048576,65536],["free",1048576,4096],["alloc",1052672,4096],["free",1056768,57344]]}
{"ok":true,"leaked":0}
{"error":"BADFREE"}
{"error":"BUSY"}
{"error":"ENOENT"}
{"ok":true}
{"addr":0}
{"error":"WOULDBLOCK"}
{"error":"UNSUPPORTED"}
`;

test("the format's additions and refusals replay as the seed answers them", () => {
  const want = FORMAT_EXPECTED.trim().split("\n");
  assertSameLines(replay(FORMAT_TRACE), want, "format trace");
});

test("named allocations: a free by id frees what the allocation returned, with its size", () => {
  const out = replay([
    '{"op":"create","arena":"a","base":4096,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}',
    '{"op":"alloc","arena":"a","size":5000,"flags":["nosleep"],"id":7}',
    '{"op":"xalloc","arena":"a","size":4096,"align":16384,"phase":0,"nocross":0,"minaddr":0,"maxaddr":0,"flags":["nosleep"],"id":8}',
    '{"op":"alloc","arena":"a","size":1,"flags":["nosleep"],"id":7}',
    '{"op":"free","arena":"a","id":7}',
    '{"op":"free","arena":"a","id":7}',
    '{"op":"xfree","arena":"a","id":8,"addr":16384}',
    '{"op":"xfree","arena":"a","id":8}',
    '{"op":"alloc","arena":"a","size":1048576,"flags":["nosleep"],"id":9}',
    '{"op":"free","arena":"a","id":9}',
    '{"op":"walk","arena":"a","types":["alloc"]}',
  ].join("\n"));
  assert.deepEqual(out.map(byCode), [
    '{"ok":true}',
    '{"addr":4096}',
    '{"addr":16384}',
    '{"error":"BADARG"}',
    '{"ok":true}',
    '{"error":"BADFREE"}',
    '{"error":"BADARG"}',
    '{"ok":true}',
    '{"addr":null}',
    '{"error":"BADFREE"}',
    '{"segs":[]}',
  ]);
});

test("replay.ts takes the vmem-freebsd kind", () => {
  const root = new URL("..", import.meta.url).pathname;
  const argv = "Deno" in globalThis
    ? ["run", "-R", "mm/replay.ts", "vmem-freebsd", "-"]
    : ["mm/replay.ts", "vmem-freebsd", "-"];
  const input = [
    '{"op":"create","arena":"a","base":0,"size":8192,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}',
    '{"op":"alloc","arena":"a","size":1,"flags":["nosleep","firstfit"]}',
    '{"op":"contains","arena":"a","addr":0,"size":1}',
  ].join("\n");
  const r = spawnSync(process.execPath, argv, { cwd: root, input, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trimEnd().split("\n").map(byCode), [
    '{"ok":true}',
    '{"addr":0}',
    '{"error":"UNSUPPORTED"}',
  ]);
});
