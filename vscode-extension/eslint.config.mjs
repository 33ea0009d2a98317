// ESLint for the extension (flat config): eslint's recommended rules and typescript-eslint's,
// over every TypeScript file the extension ships or tests. `npm test` and `make lint` run it.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'out-test/**', 'node_modules/**', 'esbuild.mjs'] },
  eslint.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'test/**/*.ts'],
    rules: {
      // an unused argument may name a parameter an interface requires; prefix it with _
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
);
