// Semgrep test target for rules/code-execution.yaml (run with `semgrep --test`); never imported.
import vm from "node:vm";
import * as nodeVm from "vm";
import { Script } from "node:vm";

declare const input: string;
declare const req: { query: Record<string, string> };
declare const sandbox: Record<string, unknown>;

export function dynamic(expr: string): void {
  // ruleid: wormhole.js.eval-nonliteral
  eval(expr);
  // ruleid: wormhole.js.eval-nonliteral
  eval(`(${req.query.fn})`);
  // ruleid: wormhole.js.eval-nonliteral
  globalThis.eval("return " + input);

  // ruleid: wormhole.js.new-function
  const fn = new Function("a", "b", expr);
  // ruleid: wormhole.js.new-function
  const fn2 = Function(`return ${input}`);

  // ruleid: wormhole.js.string-timer
  setTimeout("refresh()", 1000);
  // ruleid: wormhole.js.string-timer
  setInterval(`poll(${input})`, 500);
  // ruleid: wormhole.js.string-timer
  window.setTimeout("update(" + input + ")", 10);
  // ruleid: wormhole.js.string-timer
  setTimeout(expr, 10);

  // ruleid: wormhole.js.vm-dynamic-code
  vm.runInNewContext(expr, { x: 1 });
  // ruleid: wormhole.js.vm-dynamic-code
  nodeVm.runInThisContext(`(${input})`);
  // ruleid: wormhole.js.vm-dynamic-code
  const script = new vm.Script(input);
  // ruleid: wormhole.js.vm-dynamic-code
  const script2 = new Script(expr);
  void [fn, fn2, script, script2];
}

export function safe(handler: () => void, text: string): void {
  // ok: wormhole.js.eval-nonliteral
  eval("2 + 2");
  // ok: wormhole.js.eval-nonliteral
  const data = JSON.parse(text);
  // ok: wormhole.js.eval-nonliteral
  data.eval(text);

  // ok: wormhole.js.new-function
  const add = new Function("a", "b", "return a + b");

  // ok: wormhole.js.string-timer
  setTimeout(() => handler(), 1000);
  // ok: wormhole.js.string-timer
  setInterval(handler, 500);

  // ok: wormhole.js.vm-dynamic-code
  vm.runInNewContext("1 + 1", {});
  // ok: wormhole.js.vm-dynamic-code
  const literal = new vm.Script("globalThis.x = 1");
  // ok: wormhole.js.vm-dynamic-code
  const notVm = new Worker(text);
  // ok: wormhole.js.vm-dynamic-code
  literal.runInContext(vm.createContext({ text }));
  // ok: wormhole.js.vm-dynamic-code
  literal.runInNewContext(sandbox);
  void [add, literal, notVm];
}
