import { Migration } from '@mikro-orm/migrations';

export class Migration20261129020943_booth extends Migration {

  override name = 'Migration20261129020943_booth';

  override up(): void | Promise<void> {
    this.addSql(`create table "booth_submissions" ("id" uuid not null, "owner_id" uuid not null, "job_id" uuid not null, "qr_code_id" uuid not null, "open_qr_code" uuid null, "first_name" varchar(100) not null, "last_name" varchar(100) not null, "animal_name" varchar(100) not null, "animal_type" varchar(32) not null, "broken_bone" boolean not null default false, "original_key" varchar(300) not null, "original_content_type" varchar(100) not null, "width" int not null, "height" int not null, "decision" varchar(16) null, "choice" int null, "review_round" int not null default 0, "xray_key" varchar(300) null, "original_png_key" varchar(300) null, "reviewed_at" timestamptz null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "booth_submissions" add constraint "booth_submissions_job_id_unique" unique ("job_id");`);
    this.addSql(`alter table "booth_submissions" add constraint "booth_submissions_open_qr_code_unique" unique ("open_qr_code");`);
    this.addSql(`create index "booth_submissions_owner_id_created_at_index" on "booth_submissions" ("owner_id", "created_at");`);

    this.addSql(`create table "booth_carousel" ("id" uuid not null, "submission_id" uuid not null, "xray_key" varchar(300) not null, "original_key" varchar(300) not null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "booth_carousel_created_at_index" on "booth_carousel" ("created_at");`);

    this.addSql(`alter table "booth_submissions" add constraint "booth_submissions_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);
    this.addSql(`alter table "booth_submissions" add constraint "booth_submissions_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete cascade;`);
    this.addSql(`alter table "booth_submissions" add constraint "booth_submissions_qr_code_id_foreign" foreign key ("qr_code_id") references "qr_codes" ("id") on delete cascade;`);

    this.addSql(`alter table "booth_carousel" add constraint "booth_carousel_submission_id_foreign" foreign key ("submission_id") references "booth_submissions" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "booth_carousel" drop constraint "booth_carousel_submission_id_foreign";`);

    this.addSql(`drop table if exists "booth_submissions" cascade;`);
    this.addSql(`drop table if exists "booth_carousel" cascade;`);
  }

}
