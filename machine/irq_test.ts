import { test } from "node:test";
import assert from "node:assert/strict";
import { InterruptController } from "./irq.ts";
import { MachineError } from "./errors.ts";

test("irq: raising marks a line pending; deliver runs its handler, lowest line first", () => {
  const ic = new InterruptController(8);
  const seen: number[] = [];
  ic.establish(5, (n) => seen.push(n));
  ic.establish(2, (n) => {
    seen.push(n);
    ic.line(2).lower(); // the handler acknowledges its cause
  });
  assert.equal(ic.deliver(), 0);
  ic.line(5).raise();
  ic.line(2).raise();
  assert.deepEqual(seen, []); // nothing runs inside raise()
  assert.ok(ic.pending());
  assert.equal(ic.deliver(), 2);
  assert.deepEqual(seen, [2, 5]);
  // Line 5 was left asserted: level-triggered, it fires again.
  assert.equal(ic.deliver(), 1);
  assert.deepEqual(seen, [2, 5, 5]);
  ic.line(5).lower();
  assert.equal(ic.pending(), false);
  assert.equal(ic.deliver(), 0);
  assert.equal(ic.raised[5], 1);
  assert.equal(ic.delivered[5], 2);
  ic.check();
});

test("irq: masked lines wait; lines without a handler are stray and stay pending", () => {
  const ic = new InterruptController(4);
  let calls = 0;
  ic.establish(1, () => calls++);
  const l1 = ic.allocateLine();
  const l2 = ic.allocateLine();
  assert.equal(l1.line, 0);
  assert.equal(l2.line, 1);
  ic.mask(1);
  l2.raise();
  assert.equal(ic.pending(), false);
  assert.equal(ic.deliver(), 0);
  ic.unmask(1);
  assert.equal(ic.deliver(), 1);
  assert.equal(calls, 1);
  l1.set(true);
  assert.ok(l1.asserted);
  ic.deliver();
  assert.equal(ic.stray, 1);
  assert.ok(ic.isAsserted(0));
  ic.check();
});

test("irq: bad lines and double handlers are refused", () => {
  const ic = new InterruptController(2);
  assert.throws(() => ic.line(2), /line must be an integer in \[0x0, 0x1\], got 0x2/);
  assert.throws(() => ic.establish(-1, () => {}), MachineError);
  ic.establish(0, () => {});
  assert.throws(
    () => ic.establish(0, () => {}),
    (e: unknown) => e instanceof MachineError && e.code === "EBUSY",
  );
  ic.disestablish(0);
  assert.throws(() => ic.disestablish(0), MachineError);
  ic.allocateLine();
  ic.allocateLine();
  assert.throws(
    () => ic.allocateLine(),
    (e: unknown) => e instanceof MachineError && e.code === "ENOSPC",
  );
  assert.throws(() => new InterruptController(0), MachineError);
});
