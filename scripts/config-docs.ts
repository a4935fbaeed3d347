/**
 * `npm run docs:config`: writes docs/configuration.md from the configuration code and .env.example;
 * `--check` exits 1 when the committed page differs (the test suite checks it too).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { configReference } from '@aperture/config/config-reference.js';

const root = resolve(import.meta.dirname, '..', '..');
const target = resolve(root, 'docs/configuration.md');
const page = configReference(readFileSync(resolve(root, '.env.example'), 'utf8'));
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    /* missing: differs */
  }
  if (current !== page) {
    console.error('docs/configuration.md is out of date: run npm run docs:config');
    process.exit(1);
  }
  console.log('docs/configuration.md matches the configuration');
} else {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, page);
  console.log(`wrote ${target}`);
}
