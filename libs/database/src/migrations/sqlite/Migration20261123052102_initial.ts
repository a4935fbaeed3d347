import { Migration } from '@mikro-orm/migrations';

export class Migration20261123052102_initial extends Migration {

  override name = 'Migration20261123052102_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table \`users\` (\`id\` text not null primary key, \`username\` text not null, \`email\` text null, \`password_hash\` text not null, \`full_name\` text null, \`role\` text not null default 'user', \`disabled\` integer not null default false, \`created_at\` datetime not null, \`updated_at\` datetime not null);`);
    this.addSql(`create unique index \`users_username_unique\` on \`users\` (\`username\`);`);
    this.addSql(`create unique index \`users_email_unique\` on \`users\` (\`email\`);`);

    this.addSql(`create table \`refresh_tokens\` (\`id\` text not null primary key, \`user_id\` text not null, \`family\` text not null, \`token_hash\` text not null, \`expires_at\` datetime not null, \`revoked_at\` datetime null, \`replaced_by\` text null, \`created_at\` datetime not null, constraint \`refresh_tokens_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`refresh_tokens_user_id_index\` on \`refresh_tokens\` (\`user_id\`);`);
    this.addSql(`create index \`refresh_tokens_family_index\` on \`refresh_tokens\` (\`family\`);`);
    this.addSql(`create unique index \`refresh_tokens_token_hash_unique\` on \`refresh_tokens\` (\`token_hash\`);`);

    this.addSql(`create table \`jobs\` (\`id\` text not null primary key, \`type\` text not null, \`owner_id\` text null, \`status\` text not null default 'queued', \`progress\` double not null default 0, \`params\` json not null, \`result\` json null, \`error\` text null, \`attempts\` integer not null default 0, \`max_attempts\` integer not null default 1, \`created_at\` datetime not null, \`queued_at\` datetime not null, \`started_at\` datetime null, \`finished_at\` datetime null, \`updated_at\` datetime not null, constraint \`jobs_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`jobs_type_index\` on \`jobs\` (\`type\`);`);
    this.addSql(`create index \`jobs_owner_id_index\` on \`jobs\` (\`owner_id\`);`);
    this.addSql(`create index \`jobs_status_index\` on \`jobs\` (\`status\`);`);
    this.addSql(`create index \`jobs_owner_id_created_at_index\` on \`jobs\` (\`owner_id\`, \`created_at\`);`);

    this.addSql(`create table \`qr_batches\` (\`id\` text not null primary key, \`owner_id\` text not null, \`n\` integer not null, \`url_template\` text not null, \`job_id\` text not null, \`created_at\` datetime not null, constraint \`qr_batches_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade, constraint \`qr_batches_job_id_foreign\` foreign key (\`job_id\`) references \`jobs\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`qr_batches_owner_id_index\` on \`qr_batches\` (\`owner_id\`);`);
    this.addSql(`create unique index \`qr_batches_job_id_unique\` on \`qr_batches\` (\`job_id\`);`);

    this.addSql(`create table \`qr_codes\` (\`id\` text not null primary key, \`batch_id\` text not null, \`position\` integer not null, \`code\` text not null, \`value\` text not null, constraint \`qr_codes_batch_id_foreign\` foreign key (\`batch_id\`) references \`qr_batches\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`qr_codes_batch_id_index\` on \`qr_codes\` (\`batch_id\`);`);
    this.addSql(`create unique index \`qr_codes_code_unique\` on \`qr_codes\` (\`code\`);`);
    this.addSql(`create unique index \`qr_codes_batch_id_position_unique\` on \`qr_codes\` (\`batch_id\`, \`position\`);`);

    this.addSql(`create table \`job_artifacts\` (\`id\` text not null primary key, \`job_id\` text not null, \`name\` text not null, \`storage_key\` text not null, \`content_type\` text not null, \`size_bytes\` bigint not null, \`created_at\` datetime not null, constraint \`job_artifacts_job_id_foreign\` foreign key (\`job_id\`) references \`jobs\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`job_artifacts_job_id_index\` on \`job_artifacts\` (\`job_id\`);`);
  }

  override down(): void | Promise<void> {

    this.addSql(`drop table if exists \`users\`;`);
    this.addSql(`drop table if exists \`refresh_tokens\`;`);
    this.addSql(`drop table if exists \`jobs\`;`);
    this.addSql(`drop table if exists \`qr_batches\`;`);
    this.addSql(`drop table if exists \`qr_codes\`;`);
    this.addSql(`drop table if exists \`job_artifacts\`;`);
  }

}
