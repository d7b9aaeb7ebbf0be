import { test } from "node:test";
import assert from "node:assert/strict";
import { DriverRegistry } from "./autoconf.ts";
import { builtinDrivers, DEVICE_NAMES } from "./builtin.ts";
import { KernelError } from "../mm/errors.ts";

const attach = () => {
  throw new Error("not called");
};

test("autoconf: drivers register by name and device type; the built-ins register the same way", () => {
  const r = builtinDrivers();
  assert.deepEqual(r.entries.map((e) => [e.name, e.type]), [
    ["isa", "isadma"],
    ["nic", "nic"],
    ["nvme", "nvme"],
    ["dma30", "dma30"],
  ]);
  assert.deepEqual(r.entries.map((e) => e.name), [...DEVICE_NAMES]);
  r.register({ name: "sg", type: "sgx", attach });
  assert.equal(r.match("sgx")?.name, "sg");
  assert.equal(r.get("sg")?.type, "sgx");
  assert.equal(r.match("gpu"), undefined);
  assert.equal(builtinDrivers().match("sgx"), undefined, "each registry is its own");
  const own = new DriverRegistry([{ name: "sg", type: "sgx", attach }]);
  assert.deepEqual(own.entries.map((e) => e.name), ["sg"]);
  assert.throws(
    () => new DriverRegistry([{ name: "a", type: "t", attach }, { name: "a", type: "u", attach }]),
    /already registered/,
  );
});

test("autoconf: a name or type already taken, or a malformed entry, is refused and changes nothing", () => {
  const r = builtinDrivers();
  const before = r.entries;
  const refuse = (entry: unknown, code: string, re: RegExp) => {
    assert.throws(() => r.register(entry as never), (e: unknown) => {
      assert.ok(e instanceof KernelError, String(e));
      assert.equal(e.code, code);
      assert.match(e.message, re);
      return true;
    });
    assert.deepEqual(r.entries, before);
  };
  refuse(
    { name: "nvme", type: "other", attach },
    "EEXIST",
    /a driver named "nvme" is already registered/,
  );
  refuse(
    { name: "nvme2", type: "nvme", attach },
    "EEXIST",
    /device type "nvme" already has driver "nvme"/,
  );
  refuse(null, "EINVAL", /a driver entry must be an object, got null/);
  refuse("nvme", "EINVAL", /must be an object/);
  refuse({ name: "", type: "t", attach }, "EINVAL", /driver name must be a non-empty string/);
  refuse({ name: 5n, type: "t", attach }, "EINVAL", /driver name must be a non-empty string/);
  refuse({ name: "x", type: undefined, attach }, "EINVAL", /driver x: device type must be/);
  refuse({ name: "x", type: "t", attach: "yes" }, "EINVAL", /driver x: attach must be a function/);
  assert.equal(r.match("t"), undefined);
});
