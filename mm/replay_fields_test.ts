import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { field, intField, stringField, wordsField } from "./replay_fields.ts";

const einval = (e: unknown) => e instanceof KernelError && e.code === "EINVAL";

test("replay fields: a missing field, a bad integer, string or word list are EINVAL naming the field", () => {
  const op = { n: 5, big: 2 ** 53 - 1, w: ["a", "b"], bad: [1], dup: ["a", "a"], nul: null };
  assert.equal(field(op, "nul"), null);
  assert.throws(() => field(op, "x"), (e) => einval(e) && /"x"/.test((e as Error).message));
  assert.equal(intField(op, "n"), 5);
  assert.equal(intField(op, "big"), 2 ** 53 - 1);
  for (const v of [-1, 1.5, 2 ** 53, "5", 5n, null, true, NaN, [5]]) {
    assert.throws(() => intField({ v }, "v"), (e) => einval(e) && /"v"/.test((e as Error).message));
  }
  assert.equal(stringField({ s: "x" }, "s"), "x");
  for (const v of [5, null, ["x"], undefined]) {
    assert.throws(
      () => stringField({ v }, "v"),
      (e) => einval(e) && /"v"/.test((e as Error).message),
    );
  }
  assert.deepEqual(wordsField(op, "w", ["a", "b", "c"]), ["a", "b"]);
  assert.deepEqual(wordsField({ w: [] }, "w", ["a"]), []);
  assert.throws(() => wordsField(op, "w", ["a"]), einval);
  assert.throws(() => wordsField(op, "bad", ["a"]), einval);
  assert.throws(() => wordsField(op, "dup", ["a"]), einval);
  assert.throws(() => wordsField(op, "n", ["a"]), einval);
});
