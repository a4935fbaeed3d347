import { Migration } from '@mikro-orm/migrations';

export class Migration20261123132904_projects extends Migration {

  override name = 'Migration20261123132904_projects';

  override up(): void | Promise<void> {
    this.addSql(`create table "projects" ("id" uuid not null, "owner_id" uuid not null, "name" varchar(200) not null, "description" text not null default '', "model" varchar(100) not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "projects_owner_id_created_at_index" on "projects" ("owner_id", "created_at");`);

    this.addSql(`create table "images" ("id" uuid not null, "owner_id" uuid not null, "project_id" uuid null, "storage_key" varchar(300) not null, "original_name" varchar(255) not null, "format" varchar(16) not null, "mime" varchar(100) not null, "size_bytes" bigint not null, "width" int not null, "height" int not null, "sha256" varchar(64) not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "images_owner_id_original_name_index" on "images" ("owner_id", "original_name");`);
    this.addSql(`create index "images_owner_id_created_at_index" on "images" ("owner_id", "created_at");`);

    this.addSql(`alter table "jobs" add "image_id" uuid null, add "project_id" uuid null, add "batch_id" uuid null;`);
    this.addSql(`alter table "jobs" add constraint "jobs_image_id_foreign" foreign key ("image_id") references "images" ("id") on delete set null;`);
    this.addSql(`alter table "jobs" add constraint "jobs_project_id_foreign" foreign key ("project_id") references "projects" ("id") on delete cascade;`);
    this.addSql(`create index "jobs_batch_id_index" on "jobs" ("batch_id");`);

    this.addSql(`alter table "projects" add constraint "projects_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);

    this.addSql(`alter table "images" add constraint "images_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);
    this.addSql(`alter table "images" add constraint "images_project_id_foreign" foreign key ("project_id") references "projects" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "images" drop constraint "images_project_id_foreign";`);
    this.addSql(`alter table "jobs" drop constraint "jobs_project_id_foreign";`);
    this.addSql(`alter table "jobs" drop constraint "jobs_image_id_foreign";`);

    this.addSql(`drop table if exists "projects" cascade;`);
    this.addSql(`drop table if exists "images" cascade;`);

    this.addSql(`drop index "jobs_batch_id_index";`);
    this.addSql(`alter table "jobs" drop column "image_id", drop column "project_id", drop column "batch_id";`);
  }

}
