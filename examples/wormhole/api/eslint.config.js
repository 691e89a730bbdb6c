// ESLint 9 flat config: eslint recommended + typescript-eslint recommended.
import eslint from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig(
  globalIgnores(["dist/", "coverage/", "node_modules/"]),
  eslint.configs.recommended,
  tseslint.configs.recommended,
);
