// Semgrep test target for rules/code-execution.yaml (run with `semgrep --test`); never imported.
const vm = require("node:vm");

export function dynamic(source) {
  // ruleid: wormhole.js.new-function
  const compiled = new Function("input", source);
  // ruleid: wormhole.js.vm-dynamic-code
  const result = vm.runInContext(source, vm.createContext({}));
  // ruleid: wormhole.js.eval-nonliteral
  const legacy = eval(source);
  return [compiled, result, legacy];
}

export function astNode(pos, ast) {
  // A local class that happens to be called `Function` (as in AST libraries).
  class Function {
    constructor(start, tree) {
      this.start = start;
      this.tree = tree;
    }
  }
  // ok: wormhole.js.new-function
  return new Function(pos, ast);
}
