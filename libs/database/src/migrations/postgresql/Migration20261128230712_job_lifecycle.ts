import { Migration } from '@mikro-orm/migrations';

export class Migration20261128230712_job_lifecycle extends Migration {

  override name = 'Migration20261128230712_job_lifecycle';

  override up(): void | Promise<void> {
    this.addSql(`alter table "jobs" add "lease_owner" varchar(200) null, add "lease_expires_at" timestamptz null;`);

    this.addSql(`alter table "job_artifacts" add "attempt" int not null default 1;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "job_artifacts" drop column "attempt";`);

    this.addSql(`alter table "jobs" drop column "lease_owner", drop column "lease_expires_at";`);
  }

}
