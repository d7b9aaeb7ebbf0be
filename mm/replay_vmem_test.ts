import { test } from "node:test";
import assert from "node:assert/strict";
import { VmemReplayer } from "./replay_vmem.ts";
import { assertSameLines, byCode, replayGolden, replayLines } from "./_test_util.ts";

function replay(text: string): string[] {
  return replayLines(text, new VmemReplayer());
}

test("every golden vmem trace replays exactly", () => {
  replayGolden("vmem", 9, () => new VmemReplayer());
});

// A trace through the seed's paths that change an arena before waiting
// (next-fit stepping its rotor, then importing from a full source): the
// expected lines come from the seed built natively.
const ROTOR_TRACE = `
{"op":"create","arena":"src","base":1048576,"size":32768,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}
{"op":"create","arena":"a","base":0,"size":0,"quantum":4096,"qcache_max":4096,"source":"src","flags":["no_qcache"]}
{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","nextfit"]}
{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","nextfit"]}
{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","nextfit"]}
{"op":"free","arena":"a","addr":1048576,"size":4096}
{"op":"free","arena":"a","addr":1052672,"size":4096}
{"op":"free","arena":"a","addr":1056768,"size":4096}
{"op":"alloc","arena":"src","size":16384,"flags":["nosleep"]}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"walk","arena":"src","types":["span","alloc","free"]}
{"op":"alloc","arena":"a","size":20480,"flags":["sleep","nextfit"]}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"walk","arena":"src","types":["span","alloc","free"]}
{"op":"alloc","arena":"a","size":16384,"flags":["sleep","nextfit"]}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"free","arena":"a","addr":1048576,"size":16384}
{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","nextfit"]}
{"op":"alloc","arena":"a","size":4096,"flags":["nosleep","nextfit"]}
{"op":"free","arena":"a","addr":1048576,"size":4096}
{"op":"free","arena":"a","addr":1052672,"size":4096}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"alloc","arena":"a","size":20480,"flags":["nosleep","nextfit"]}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"walk","arena":"src","types":["span","alloc","free"]}
{"op":"xalloc","arena":"a","size":4096,"align":8192,"phase":4096,"nocross":0,"minaddr":0,"maxaddr":0,"flags":["sleep","endalloc"]}
{"op":"walk","arena":"a","types":["span","alloc","free"]}
{"op":"size","arena":"src","types":["free"]}
{"op":"create","arena":"ids","base":1,"size":5,"quantum":1,"qcache_max":0,"source":null,"flags":["identifier"]}
{"op":"alloc","arena":"ids","size":2,"flags":["nosleep","nextfit"]}
{"op":"alloc","arena":"ids","size":2,"flags":["nosleep","nextfit"]}
{"op":"free","arena":"ids","addr":1,"size":2}
{"op":"alloc","arena":"ids","size":3,"flags":["sleep","nextfit"]}
{"op":"walk","arena":"ids","types":["span","alloc","free"]}
{"op":"alloc","arena":"ids","size":2,"flags":["sleep","nextfit"]}
{"op":"walk","arena":"ids","types":["span","alloc","free"]}
{"op":"destroy","arena":"a"}
{"op":"destroy","arena":"src"}
`;

const ROTOR_EXPECTED = `
{"ok":true}
{"ok":true}
{"addr":1048576}
{"addr":1052672}
{"addr":1056768}
{"ok":true}
{"ok":true}
{"ok":true}
{"addr":1064960}
{"segs":[["span",1048576,16384],["free",1048576,12288],["free",1060864,4096]]}
{"segs":[["span",1048576,32768],["alloc",1048576,16384],["alloc",1064960,16384]]}
{"error":"WOULDBLOCK"}
{"segs":[["span",1048576,16384],["free",1048576,12288],["free",1060864,4096]]}
{"segs":[["span",1048576,32768],["alloc",1048576,16384],["alloc",1064960,16384]]}
{"addr":1048576}
{"segs":[["span",1048576,16384],["alloc",1048576,16384]]}
{"ok":true}
{"addr":1048576}
{"addr":1052672}
{"ok":true}
{"ok":true}
{"segs":[["span",1048576,16384],["free",1048576,8192],["free",1056768,8192]]}
{"addr":null}
{"segs":[["span",1048576,16384],["free",1048576,16384]]}
{"segs":[["span",1048576,32768],["alloc",1048576,16384],["alloc",1064960,16384]]}
{"addr":1060864}
{"segs":[["span",1048576,16384],["free",1048576,12288],["alloc",1060864,4096]]}
{"size":0}
{"ok":true}
{"addr":1}
{"addr":3}
{"ok":true}
{"error":"WOULDBLOCK"}
{"segs":[["span",1,5],["free",1,2],["alloc",3,2],["free",5,1]]}
{"addr":1}
{"segs":[["span",1,5],["alloc",1,2],["alloc",3,2],["free",5,1]]}
{"ok":true,"leaked":4096}
{"ok":true,"leaked":32768}
`;

test("sleeping next-fit requests that would wait change nothing, as in the seed", () => {
  const want = ROTOR_EXPECTED.trim().split("\n");
  assertSameLines(replay(ROTOR_TRACE), want, "rotor trace");
});

test("replay refuses bad operations with their codes and goes on", () => {
  const out = replay(`
    # comment lines and blank lines produce nothing

    {"op":"create","arena":"a","base":4096,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}
    {"op":"create","arena":"a","base":4096,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}
    {"op":"alloc","arena":"b","size":4096,"flags":["nosleep"]}
    {"op":"alloc","arena":"a","size":4096,"flags":["nosleep","sleep"]}
    {"op":"alloc","arena":"a","size":4096,"flags":["bestfit","firstfit","nosleep"]}
    {"op":"alloc","arena":"a","size":4096,"flags":["fast","nosleep"]}
    {"op":"alloc","arena":"a","size":-1,"flags":["nosleep"]}
    {"op":"alloc","arena":"a","flags":["nosleep"]}
    {"op":"frobnicate","arena":"a"}
    {"op":"free","arena":"a","addr":4096,"size":4096}
    {"op":"create","arena":"c","base":0,"size":0,"quantum":4096,"qcache_max":0,"source":"zz","flags":[]}
    {"op":"create","arena":"c","base":0,"size":0,"quantum":4096,"qcache_max":0,"source":null,"flags":["big"]}
    {"op":"alloc","arena":"a","size":8192,"flags":["endalloc","nosleep"]}
    {"op":"walk","arena":"a","types":["span","alloc","free"]}
    {"op":"size","arena":"a","types":[]}
    {"op":"walk","arena":"a","types":[]}
    {"op":"contains","arena":"a","addr":69632,"size":0}
    {"op":"destroy","arena":"a"}
    {"op":"destroy","arena":"a"}
  `);
  assert.deepEqual(out.map(byCode), [
    '{"ok":true}',
    '{"error":"EEXIST"}',
    '{"error":"ENOENT"}',
    '{"error":"EINVAL"}',
    '{"error":"EINVAL"}',
    '{"error":"EINVAL"}',
    '{"error":"EINVAL"}',
    '{"error":"EINVAL"}',
    '{"error":"BADOP"}',
    '{"error":"BADFREE"}',
    '{"error":"ENOENT"}',
    '{"error":"EINVAL"}',
    '{"addr":61440}',
    '{"segs":[["span",4096,65536],["free",4096,57344],["alloc",61440,8192]]}',
    '{"size":0}',
    '{"segs":[]}',
    '{"contains":true}',
    '{"ok":true,"leaked":8192}',
    '{"error":"ENOENT"}',
  ]);
});

test("a word named twice in a list is refused, as the reference refuses it, and changes nothing", () => {
  const out = replay(`
    {"op":"create","arena":"a","base":4096,"size":65536,"quantum":8,"qcache_max":0,"source":null,"flags":[]}
    {"op":"alloc","arena":"a","size":24,"flags":["nextfit","nosleep","nosleep"]}
    {"op":"alloc","arena":"a","size":24,"flags":["sleep","sleep"]}
    {"op":"xalloc","arena":"a","size":16,"align":0,"phase":0,"nocross":0,"minaddr":0,"maxaddr":0,"flags":["bestfit","nosleep","bestfit"]}
    {"op":"alloc","arena":"a","size":8,"flags":["endalloc","nosleep","endalloc"]}
    {"op":"walk","arena":"a","types":["span","span"]}
    {"op":"size","arena":"a","types":["free","free"]}
    {"op":"create","arena":"b","base":8,"size":8,"quantum":8,"qcache_max":0,"source":null,"flags":["identifier","identifier"]}
    {"op":"walk","arena":"a","types":["span","free","alloc"]}
    {"op":"walk","arena":"b","types":["span"]}
  `);
  assert.deepEqual(out.map(byCode), [
    '{"ok":true}',
    ...Array(7).fill('{"error":"EINVAL"}'),
    '{"segs":[["span",4096,65536],["free",4096,65536]]}',
    '{"error":"ENOENT"}',
  ]);
});

test("a destroyed arena's name can be used again", () => {
  const out = replay(`
    {"op":"create","arena":"x y","base":1,"size":10,"quantum":1,"qcache_max":0,"source":null,"flags":["identifier"]}
    {"op":"alloc","arena":"x y","size":3,"flags":["nosleep","nextfit"]}
    {"op":"destroy","arena":"x y"}
    {"op":"create","arena":"x y","base":1,"size":10,"quantum":1,"qcache_max":0,"source":null,"flags":["identifier"]}
    {"op":"alloc","arena":"x y","size":3,"flags":["nosleep","nextfit"]}
  `);
  assert.deepEqual(out, [
    '{"ok":true}',
    '{"addr":1}',
    '{"ok":true,"leaked":3}',
    '{"ok":true}',
    '{"addr":1}',
  ]);
});
