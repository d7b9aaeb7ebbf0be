import { test } from "node:test";
import assert from "node:assert/strict";
import { highbit, isPow2, TWO32 } from "./bits.ts";

test("bits: highbit counts from 1 on both words", () => {
  assert.equal(highbit(0), 0);
  assert.equal(highbit(1), 1);
  assert.equal(highbit(0x80000000), 32);
  assert.equal(highbit(TWO32 - 1), 32);
  assert.equal(highbit(TWO32), 33);
  assert.equal(highbit(2 ** 52 + 1), 53);
  assert.equal(highbit(Number.MAX_SAFE_INTEGER), 53);
});

test("bits: isPow2 holds for every power of two up to 2^53 and nothing next to one", () => {
  for (let k = 0; k <= 53; k++) {
    const p = 2 ** k;
    assert.equal(isPow2(p), true, `2^${k}`);
    if (k >= 2) assert.equal(isPow2(p - 1), false, `2^${k} - 1`);
    if (k >= 1 && k < 53) assert.equal(isPow2(p + 1), false, `2^${k} + 1`);
    if (k >= 1 && k < 52) assert.equal(isPow2(p + 0.5), false, `2^${k} + 0.5`);
    assert.equal(isPow2(-p), false, `-2^${k}`);
  }
  assert.equal(isPow2(2 ** 54), false, "above 2^53 nothing is exact");
  for (const v of [0, 0.5, 2.5, 3, 6, 12, NaN, Infinity, -Infinity]) {
    assert.equal(isPow2(v), false, String(v));
  }
  for (const v of ["8", 8n, true, null, undefined, [8], { valueOf: () => 8 }]) {
    assert.equal(isPow2(v as number), false, String(v));
  }
});
