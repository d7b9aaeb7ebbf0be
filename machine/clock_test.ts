import { test } from "node:test";
import assert from "node:assert/strict";
import { Clock } from "./clock.ts";
import { createMachine } from "./machine.ts";
import { DeviceModel, INT_DONE, REG_IER, REG_ISR } from "./device.ts";
import { MachineError } from "./errors.ts";

test("clock: events run in time order, ties in the order queued, and time jumps to each", () => {
  const after: number[] = [];
  const c = new Clock(() => after.push(c.now));
  const ran: string[] = [];
  c.schedule(300, () => ran.push("c"));
  c.schedule(100, () => ran.push("a"));
  c.schedule(100, () => ran.push("b"));
  const gone = c.schedule(200, () => ran.push("cancelled"));
  assert.equal(c.cancel(gone), true);
  assert.equal(c.cancel(gone), false);
  assert.equal(c.pending, 3);
  assert.equal(c.run(), 3);
  assert.deepEqual(ran, ["a", "b", "c"]);
  assert.deepEqual(after, [100, 100, 300]);
  assert.equal(c.now, 300);
  c.check();
  assert.throws(() => c.schedule(-1, () => {}), MachineError);
  assert.throws(() => c.schedule(1.5, () => {}), /delay/);
  assert.throws(() => c.schedule(1, 5 as unknown as () => void), /function/);
  assert.equal(c.pending, 0);
});

test("clock: queued work runs by itself on the host's microtasks, after the code that queued it", async () => {
  const c = new Clock();
  const ran: number[] = [];
  c.schedule(10, () => {
    ran.push(1);
    c.schedule(0, () => ran.push(3));
  });
  c.schedule(20, () => ran.push(2));
  assert.deepEqual(ran, [], "nothing runs inside schedule()");
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(ran, [1, 3, 2]);
  assert.equal(c.now, 20);
  assert.equal(c.ran, 3);
});

test("clock: work that throws is recorded and reported by check, and the queue goes on", () => {
  const c = new Clock();
  const ran: number[] = [];
  c.schedule(1, () => {
    throw new Error("the device wedged");
  });
  c.schedule(2, () => ran.push(2));
  assert.equal(c.run(), 2);
  assert.deepEqual(ran, [2]);
  assert.deepEqual(c.errors, ["the device wedged"]);
  assert.throws(() => c.check(), /device work threw: the device wedged/);
});

class Later extends DeviceModel {
  done = 0;
  constructor(m: ReturnType<typeof createMachine>, synchronous: boolean) {
    super(m, { name: synchronous ? "sync0" : "async0", type: "t", id: 1, dma: {}, synchronous });
  }
  protected readReg(): number {
    return this.done;
  }
  protected writeReg(offset: number): void {
    if (offset === 0x10) {
      this.later(1000, () => {
        this.done++;
        this.interrupt(INT_DONE);
      });
    } else if (offset === 0x14) this.resetCommon();
  }
}

test("device: later() runs at once when synchronous, else on the clock, counted in flight", () => {
  const m = createMachine({ preset: "isa" });
  const s = new Later(m, true), a = new Later(m, false);
  const causes: string[] = [];
  for (const d of [s, a]) {
    m.irq.establish(d.irq.line, () => {
      causes.push(d.name);
      m.bus.write32(d.base + REG_ISR, INT_DONE);
    }, d.name);
    m.bus.write32(d.base + REG_IER, INT_DONE);
    m.bus.write32(d.base + 0x10, 1);
  }
  assert.equal(s.done, 1);
  assert.equal(s.dma.inFlight, 0);
  assert.equal(a.done, 0);
  assert.equal(a.dma.inFlight, 1);
  m.irq.deliver();
  assert.deepEqual(causes, ["sync0"]);
  assert.equal(m.clock.run(), 1);
  assert.equal(a.done, 1);
  assert.equal(a.dma.inFlight, 0);
  assert.deepEqual(causes, ["sync0", "async0"], "the clock delivered the interrupt");
  // A reset drops work queued before it.
  m.bus.write32(a.base + 0x10, 1);
  m.bus.write32(a.base + 0x14, 1);
  assert.equal(m.clock.run(), 1);
  assert.equal(a.done, 1);
  assert.equal(a.dma.inFlight, 0);
  assert.deepEqual(m.irq.established(), [
    { line: s.irq.line, owner: "sync0" },
    { line: a.irq.line, owner: "async0" },
  ]);
  m.check();
});
