import assert from "node:assert/strict";
import { decodeMimeWords, loadSpam, messageText, type SpamExample } from "../../data/spam.ts";
import { splitOf } from "../../data/split.ts";

Deno.test("spam-assassin loader", async (t) => {
  const ds = loadSpam({ maxBytes: 256 }); // loaded (and cached) once for all steps
  const all: SpamExample[] = [...ds.train, ...ds.validation, ...ds.test];

  await t.step("counts and labels", () => {
    assert.deepEqual(ds.counts.all, { total: 6046, ham: 4150, spam: 1896 });
    assert.equal(all.length, 6046);
    for (const s of ["train", "validation", "test"] as const) {
      const c = ds.counts[s];
      assert.equal(c.total, ds[s].length);
      assert.equal(c.spam, ds[s].filter((e) => e.label === 1).length);
      assert.ok(c.ham > 0 && c.spam > 0, `${s} has both labels`);
    }
    for (const e of all) {
      assert.equal(e.label, e.group.startsWith("spam") ? 1 : 0);
    }
  });

  await t.step("split sizes ≈ 80/10/10, disjoint, hash-determined", () => {
    const n = all.length;
    assert.ok(Math.abs(ds.train.length / n - 0.8) < 0.03);
    assert.ok(Math.abs(ds.validation.length / n - 0.1) < 0.03);
    assert.ok(Math.abs(ds.test.length / n - 0.1) < 0.03);
    const ids = new Set(all.map((e) => e.id));
    assert.equal(ids.size, n, "ids are unique and splits disjoint");
    for (const s of ["train", "validation", "test"] as const) {
      for (const e of ds[s]) assert.equal(splitOf(e.id), s);
    }
  });

  await t.step("deterministic and stable ids", () => {
    const again = loadSpam({ maxBytes: 256 });
    assert.deepEqual(again.test.map((e) => e.id), ds.test.map((e) => e.id));
    assert.deepEqual(again.train.slice(0, 50), ds.train.slice(0, 50));
    assert.equal(ds.train[0].id, "easy-ham-1/00001");
    assert.ok(all.some((e) => e.id === "spam-2/01400"));
    for (const e of all) assert.match(e.id, /^(easy-ham-[12]|hard-ham-1|spam-[12])\/\d{5}$/);
  });

  await t.step("texts: subject first, normalized, within maxBytes", () => {
    const enc = new TextEncoder();
    for (const e of all) {
      assert.ok(enc.encode(e.text).length <= 256);
      assert.ok(!/[\t\r]| {2}/.test(e.text));
      assert.ok(!/^From \S+@\S+ +\w{3} \w{3}/.test(e.text), "mbox header removed");
      assert.ok(!/^(Return-Path|Received|Delivered-To):/m.test(e.text.split("\n")[0]));
    }
    assert.ok(ds.train[0].text.startsWith("Re: New Sequences Window\n"));
    const longer = loadSpam({ maxBytes: 2048 });
    assert.ok(longer.train[0].text.length > ds.train[0].text.length);
    assert.ok(longer.train[0].text.startsWith(ds.train[0].text));
  });

  await t.step("message parsing", () => {
    assert.equal(
      messageText(
        "From x\r\nSubject: Hello\r\n  world\r\nTo: y\r\n\r\nLine 1\r\n\r\n  Line\t2\r\n",
      ),
      "Hello world\nLine 1 Line 2",
    );
    assert.equal(messageText("To: y\n\nbody"), "\nbody");
    assert.equal(messageText("Subject: only headers"), "only headers\n");
    assert.equal(decodeMimeWords("=?iso-8859-1?Q?=FCber_alles?="), "über alles");
    assert.equal(decodeMimeWords("=?utf-8?B?w7xiZXI=?= =?utf-8?Q?_x?="), "über x");
    assert.equal(decodeMimeWords("=?bogus-cs?Q?a?= plain"), "a plain");
  });
});
