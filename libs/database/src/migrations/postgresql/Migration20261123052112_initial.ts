import { Migration } from '@mikro-orm/migrations';

export class Migration20261123052112_initial extends Migration {

  override name = 'Migration20261123052112_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "users" ("id" uuid not null, "username" varchar(64) not null, "email" varchar(254) null, "password_hash" varchar(255) not null, "full_name" varchar(200) null, "role" varchar(16) not null default 'user', "disabled" boolean not null default false, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "users" add constraint "users_username_unique" unique ("username");`);
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);

    this.addSql(`create table "refresh_tokens" ("id" uuid not null, "user_id" uuid not null, "family" uuid not null, "token_hash" varchar(64) not null, "expires_at" timestamptz not null, "revoked_at" timestamptz null, "replaced_by" uuid null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "refresh_tokens_family_index" on "refresh_tokens" ("family");`);
    this.addSql(`alter table "refresh_tokens" add constraint "refresh_tokens_token_hash_unique" unique ("token_hash");`);

    this.addSql(`create table "jobs" ("id" uuid not null, "type" varchar(64) not null, "owner_id" uuid null, "status" varchar(16) not null default 'queued', "progress" double precision not null default 0, "params" jsonb not null, "result" jsonb null, "error" text null, "attempts" int not null default 0, "max_attempts" int not null default 1, "created_at" timestamptz not null, "queued_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "jobs_type_index" on "jobs" ("type");`);
    this.addSql(`create index "jobs_status_index" on "jobs" ("status");`);
    this.addSql(`create index "jobs_owner_id_created_at_index" on "jobs" ("owner_id", "created_at");`);

    this.addSql(`create table "qr_batches" ("id" uuid not null, "owner_id" uuid not null, "n" int not null, "url_template" varchar(500) not null, "job_id" uuid not null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "qr_batches" add constraint "qr_batches_job_id_unique" unique ("job_id");`);

    this.addSql(`create table "qr_codes" ("id" uuid not null, "batch_id" uuid not null, "position" int not null, "code" varchar(32) not null, "value" varchar(600) not null, primary key ("id"));`);
    this.addSql(`alter table "qr_codes" add constraint "qr_codes_code_unique" unique ("code");`);
    this.addSql(`alter table "qr_codes" add constraint "qr_codes_batch_id_position_unique" unique ("batch_id", "position");`);

    this.addSql(`create table "job_artifacts" ("id" uuid not null, "job_id" uuid not null, "name" varchar(200) not null, "storage_key" varchar(300) not null, "content_type" varchar(100) not null, "size_bytes" bigint not null, "created_at" timestamptz not null, primary key ("id"));`);

    this.addSql(`alter table "refresh_tokens" add constraint "refresh_tokens_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;`);

    this.addSql(`alter table "jobs" add constraint "jobs_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);

    this.addSql(`alter table "qr_batches" add constraint "qr_batches_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);
    this.addSql(`alter table "qr_batches" add constraint "qr_batches_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete cascade;`);

    this.addSql(`alter table "qr_codes" add constraint "qr_codes_batch_id_foreign" foreign key ("batch_id") references "qr_batches" ("id") on delete cascade;`);

    this.addSql(`alter table "job_artifacts" add constraint "job_artifacts_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "refresh_tokens" drop constraint "refresh_tokens_user_id_foreign";`);
    this.addSql(`alter table "jobs" drop constraint "jobs_owner_id_foreign";`);
    this.addSql(`alter table "qr_batches" drop constraint "qr_batches_owner_id_foreign";`);
    this.addSql(`alter table "qr_batches" drop constraint "qr_batches_job_id_foreign";`);
    this.addSql(`alter table "job_artifacts" drop constraint "job_artifacts_job_id_foreign";`);
    this.addSql(`alter table "qr_codes" drop constraint "qr_codes_batch_id_foreign";`);

    this.addSql(`drop table if exists "users" cascade;`);
    this.addSql(`drop table if exists "refresh_tokens" cascade;`);
    this.addSql(`drop table if exists "jobs" cascade;`);
    this.addSql(`drop table if exists "qr_batches" cascade;`);
    this.addSql(`drop table if exists "qr_codes" cascade;`);
    this.addSql(`drop table if exists "job_artifacts" cascade;`);
  }

}
