/* SPDX-License-Identifier: MIT */
/* Node Manager's state, shared by its parts (docs/node-manager.md):
 *   kos-node-manager.c  start-up: boot.json, the ImageFS, the loop
 *   events.c            the event log (console and /data/kos/events)
 *   app.c               systemd over D-Bus: kos-app.target, reboots, the app's states
 *   confirm.c           marking the boot good, the scrub that confirms it
 *   updates.c           the four update sources: inbox, update drive, API, registry
 *   api.c               the Varlink API: one table of methods
 * Everything runs on one sd-event loop; nothing here may block it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "boot-info.h"
#include "bundle-install.h"
#include "imagefs.h"
#include "keyring.h"
#include "layout.h"
#include "rollback.h"
#include "scrub.h"
#include "update-config.h"
#include "varlink-server.h"

#define SOCKET_PATH KOS_NODE_SOCKET
#define IMAGEFS_MOUNT KOS_RUN_IMAGEFS_MOUNT
#define DATA_KOS KOS_DATA_KOS_DIR /* inbox/, processed/, rejected/, events: all opened beneath it */
#define UPDATE_MOUNT KOS_RUN_DIR "/update"
#define PROGRESS_EVENT_INTERVAL_NS (5 * 1000000000ULL)
#define SCRUB_LOG_INTERVAL_NS (10 * 1000000000ULL)
#define BUNDLES_MAX 64
#define APP_TARGET "kos-app.target"

enum state { STARTING, INSTALLING, HOLDING, STARTING_APP, SETTLING, RUNNING, APP_FAILED, REBOOTING };

enum bundle_source { FROM_INBOX, FROM_DRIVE, FROM_API, FROM_REGISTRY };

/* The scrub that confirms a boot with hash-tree components (lib/device/scrub.h):
 * pending until the boot is marked good. */
enum scrub_state { SCRUB_PENDING, SCRUB_RUNNING, SCRUB_DONE, SCRUB_FAILED };

struct scrub_job {
        enum scrub_state state;
        struct kos_scrub_report report;
        uint64_t last_log_ns;
};

/* The install that runs (at most one), and the bundles still to try at boot. */
struct install_job {
        bool running;
        enum bundle_source source;
        char name[300];                     /* escaped, for logs and status */
        char file[256];                     /* as in the directory (inbox, drive) */
        struct varlink_connection *caller;  /* FROM_API: answered when done */
        uint64_t done, total, last_event_ns;
};

struct boot_updates {
        enum bundle_source source; /* the directory being worked through */
        int dir_fd;                /* the inbox or the drive's root, or -1 */
        bool drive_mounted;
        char *names[BUNDLES_MAX];
        size_t count, next;
};

struct node {
        sd_event *event;
        sd_bus *bus;
        struct kos_imagefs img;
        struct kos_keyring ring;
        bool have_imagefs, have_keyring;
        struct kos_boot_info boot; /* KOS_BOOT_INFO_FILE */
        bool have_floor;
        struct kos_rollback_floor floor; /* read at start and after marking good, for Status */
        char name[KOS_NAME_MAX + 1];
        char id_hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t id[KOS_SHA256_LEN];
        long long version;
        enum state state;
        char app_job[256];
        unsigned settle;
        bool marked_good;
        bool hold; /* Hold was called, or kos.hold */
        struct install_job job;
        struct scrub_job scrub;
        struct boot_updates updates;
        /* Updates from a registry (UPDATE_CONFIG_FILE), when configured. */
        bool have_update_source;
        struct update_config update;
        sd_event_source *poll_timer;
        uint64_t next_poll_usec;  /* CLOCK_MONOTONIC, 0 when none is set */
        char last_poll[400];      /* what the last poll did, for status */
        json_t *boot_kernel;      /* the Boot Kernel's slots and floor (boot-slots.c), for status; NULL when unknown */
};

/* events.c: /data/kos, opened once beneath /data without following
 * symlinks; -1 when there is no DataFS (or it is not a directory there). */
extern int data_kos_fd;
void open_data_kos(void);
/* An event: on the console/journal and in /data/kos/events. */
void event(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* app.c */
const char *node_state_name(enum state s);
void set_state(struct node *n, enum state s);
void request_reboot(struct node *n, const char *why);
/* factory-reset.c: io.kos.Node.FactoryReset. */
json_t *api_factory_reset(struct node *n, struct varlink_connection *c, json_t *parameters);
const char *app_active_state(struct node *n);
int start_app(struct node *n);
int connect_systemd(struct node *n);

/* boot-slots.c: the Boot Kernel's ESP slots, after a boot is marked good. */
void boot_slots_after_good(struct node *n);
/* At start: reads the slots for status and logs which slot booted. */
void boot_slots_refresh(struct node *n);
/* dbx-update.c: the release's dbx update, from boot-slots.c with the ESP and efivarfs open. */
struct kos_bk_slots;
void dbx_update_apply(struct node *n, int esp_fd, int efivars_fd, const struct kos_bk_slots *s,
                      const struct kos_dbx_update *u);

/* confirm.c */
const char *scrub_state_name(enum scrub_state s);
void refresh_floor(struct node *n);
int mark_good(struct node *n);

/* updates.c */
void process_updates(struct node *n);
void load_update_source(struct node *n);
void schedule_poll(struct node *n);
int start_pull(struct node *n, struct varlink_connection *caller);
void on_install_progress(uint64_t done, uint64_t total, void *userdata);
void on_install_done(int r, const struct kos_bundle_result *result, void *userdata);
/* After the boot's updates (or with none to look for): polling the registry
 * starts, and the boot goes on to hold or to start the app. */
void continue_boot(struct node *n);

/* api.c: a Varlink call (varlink_server_new()'s handler). */
json_t *node_api_call(struct varlink_connection *c, const char *method, json_t *parameters, void *userdata);

