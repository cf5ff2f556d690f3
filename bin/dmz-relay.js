#!/usr/bin/env node
import { launch } from './launch.js';

await launch('dmz-relay', 'relay/cli', 'runRelayCli');
