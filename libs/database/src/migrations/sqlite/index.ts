import { Migration20261123052102_initial } from './Migration20261123052102_initial.js';
import { Migration20261123054148_accounts } from './Migration20261123054148_accounts.js';
import { Migration20261123132904_projects } from './Migration20261123132904_projects.js';
import { Migration20261128230715_job_lifecycle } from './Migration20261128230715_job_lifecycle.js';
import { Migration20261129014812_batches } from './Migration20261129014812_batches.js';
import { Migration20261129015652_usernames_case_insensitive } from './Migration20261129015652_usernames_case_insensitive.js';
import { Migration20261129020351_api_key_scopes } from './Migration20261129020351_api_key_scopes.js';
import { Migration20261129020945_booth } from './Migration20261129020945_booth.js';
import { Migration20261129024620_job_input_bytes } from './Migration20261129024620_job_input_bytes.js';
import { Migration20261129074828_installed_models } from './Migration20261129074828_installed_models.js';

/** Applied in this order; append each new migration. */
export const SQLITE_MIGRATIONS = [Migration20261123052102_initial, Migration20261123054148_accounts, Migration20261123132904_projects, Migration20261128230715_job_lifecycle, Migration20261129014812_batches, Migration20261129015652_usernames_case_insensitive, Migration20261129020351_api_key_scopes, Migration20261129020945_booth, Migration20261129024620_job_input_bytes, Migration20261129074828_installed_models];
