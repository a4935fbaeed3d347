import { Migration } from '@mikro-orm/migrations';

export class Migration20261123132904_projects extends Migration {

  override name = 'Migration20261123132904_projects';

  override up(): void | Promise<void> {
    this.addSql(`create table \`projects\` (\`id\` text not null primary key, \`owner_id\` text not null, \`name\` text not null, \`description\` text not null default '', \`model\` text not null, \`created_at\` datetime not null, \`updated_at\` datetime not null, constraint \`projects_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`projects_owner_id_index\` on \`projects\` (\`owner_id\`);`);
    this.addSql(`create index \`projects_owner_id_created_at_index\` on \`projects\` (\`owner_id\`, \`created_at\`);`);

    this.addSql(`create table \`images\` (\`id\` text not null primary key, \`owner_id\` text not null, \`project_id\` text null, \`storage_key\` text not null, \`original_name\` text not null, \`format\` text not null, \`mime\` text not null, \`size_bytes\` bigint not null, \`width\` integer not null, \`height\` integer not null, \`sha256\` text not null, \`created_at\` datetime not null, \`updated_at\` datetime not null, constraint \`images_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade, constraint \`images_project_id_foreign\` foreign key (\`project_id\`) references \`projects\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`images_owner_id_index\` on \`images\` (\`owner_id\`);`);
    this.addSql(`create index \`images_project_id_index\` on \`images\` (\`project_id\`);`);
    this.addSql(`create index \`images_owner_id_original_name_index\` on \`images\` (\`owner_id\`, \`original_name\`);`);
    this.addSql(`create index \`images_owner_id_created_at_index\` on \`images\` (\`owner_id\`, \`created_at\`);`);

    this.addSql(`alter table \`jobs\` add column \`image_id\` text null constraint \`jobs_image_id_foreign\` references \`images\` (\`id\`) on delete set null;`);
    this.addSql(`alter table \`jobs\` add column \`project_id\` text null constraint \`jobs_project_id_foreign\` references \`projects\` (\`id\`) on delete cascade;`);
    this.addSql(`alter table \`jobs\` add column \`batch_id\` text null;`);
    this.addSql(`create index \`jobs_image_id_index\` on \`jobs\` (\`image_id\`);`);
    this.addSql(`create index \`jobs_project_id_index\` on \`jobs\` (\`project_id\`);`);
    this.addSql(`create index \`jobs_batch_id_index\` on \`jobs\` (\`batch_id\`);`);
  }

  override down(): void | Promise<void> {

    this.addSql(`drop table if exists \`projects\`;`);
    this.addSql(`drop table if exists \`images\`;`);

    this.addSql(`drop index \`jobs_image_id_index\`;`);
    this.addSql(`drop index \`jobs_project_id_index\`;`);
    this.addSql(`drop index \`jobs_batch_id_index\`;`);
    this.addSql(`alter table \`jobs\` drop column \`image_id\`;`);
    this.addSql(`alter table \`jobs\` drop column \`project_id\`;`);
    this.addSql(`alter table \`jobs\` drop column \`batch_id\`;`);
  }

}
