import { Migration } from '@mikro-orm/migrations';

export class Migration20261129014812_batches extends Migration {

  override name = 'Migration20261129014812_batches';

  override up(): void | Promise<void> {
    this.addSql(`create table \`batches\` (\`id\` text not null primary key, \`owner_id\` text not null, \`kind\` text not null, \`model\` text not null, \`total_images\` integer not null, \`items\` json not null, \`created_at\` datetime not null, constraint \`batches_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`batches_owner_id_index\` on \`batches\` (\`owner_id\`);`);
    this.addSql(`create index \`batches_owner_id_created_at_index\` on \`batches\` (\`owner_id\`, \`created_at\`);`);

    this.addSql(`alter table \`jobs\` add column \`model\` text null;`);
    this.addSql(`create index \`jobs_model_index\` on \`jobs\` (\`model\`);`);
    // Jobs queued before the column existed: their model from the params.
    this.addSql(`update \`jobs\` set \`model\` = coalesce(json_extract(\`params\`, '$.model'), json_extract(\`params\`, '$.detectionModel'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`batches\`;`);

    this.addSql(`drop index \`jobs_model_index\`;`);
    this.addSql(`alter table \`jobs\` drop column \`model\`;`);
  }

}
