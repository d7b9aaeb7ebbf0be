import { test } from "node:test";
import assert from "node:assert/strict";
import { WaitQueue } from "./waitq.ts";

const cancelled = () => new Error("cancelled");

test("waitq: a broadcast wakes every request waiting then, not later ones", async () => {
  const q = new WaitQueue();
  assert.equal(q.waiting, false);
  q.broadcast();
  const woken: number[] = [];
  const a = q.wait(undefined, cancelled).then(() => woken.push(1));
  const b = q.wait(new AbortController().signal, cancelled).then(() => woken.push(2));
  assert.equal(q.waiting, true);
  await Promise.resolve();
  assert.deepEqual(woken, []);
  q.broadcast();
  assert.equal(q.waiting, false);
  let late = false;
  const c = q.wait(undefined, cancelled).then(() => (late = true));
  await Promise.all([a, b]);
  assert.deepEqual(woken, [1, 2]);
  assert.equal(late, false);
  q.broadcast();
  await c;
  assert.equal(late, true);
});

test("waitq: an aborted wait rejects and leaves the queue", async () => {
  const q = new WaitQueue();
  const ac = new AbortController();
  const p = q.wait(ac.signal, cancelled);
  ac.abort();
  await assert.rejects(p, /cancelled/);
  assert.equal(q.waiting, false, "the last waiter gone, nobody waits");
  await assert.rejects(q.wait(ac.signal, cancelled), /cancelled/, "already aborted: at once");
  assert.equal(q.waiting, false);
  const other = q.wait(undefined, cancelled);
  const ac2 = new AbortController();
  const gone = q.wait(ac2.signal, cancelled);
  ac2.abort();
  await assert.rejects(gone, /cancelled/);
  assert.equal(q.waiting, true);
  q.broadcast();
  await other;
});
