#!/usr/bin/env node
// The `chorus` command. The sources are TypeScript, run through tsx's loader: register it,
// then load the CLI (a dynamic import, so that it runs after the registration).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
