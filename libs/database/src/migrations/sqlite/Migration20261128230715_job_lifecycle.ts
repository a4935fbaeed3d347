import { Migration } from '@mikro-orm/migrations';

export class Migration20261128230715_job_lifecycle extends Migration {

  override name = 'Migration20261128230715_job_lifecycle';

  override up(): void | Promise<void> {
    this.addSql(`alter table \`jobs\` add column \`lease_owner\` text null;`);
    this.addSql(`alter table \`jobs\` add column \`lease_expires_at\` datetime null;`);

    this.addSql(`alter table \`job_artifacts\` add column \`attempt\` integer not null default 1;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`job_artifacts\` drop column \`attempt\`;`);

    this.addSql(`alter table \`jobs\` drop column \`lease_owner\`;`);
    this.addSql(`alter table \`jobs\` drop column \`lease_expires_at\`;`);
  }

}
