import { Migration } from '@mikro-orm/migrations';

export class Migration20261129024621_job_input_bytes extends Migration {

  override name = 'Migration20261129024621_job_input_bytes';

  override up(): void | Promise<void> {
    this.addSql(`alter table "jobs" add "input_bytes" bigint not null default '0';`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "jobs" drop column "input_bytes";`);
  }

}
