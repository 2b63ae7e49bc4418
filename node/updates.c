/* SPDX-License-Identifier: MIT */
/* Node Manager's update sources: bundles in /data/kos/inbox/ and on a drive
 * labelled KOS-UPDATE (at boot), the API's Install (api.c), and a registry
 * polled through kos-node-pull. Installs run in a child process
 * (installer.c); one at a time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "bundle-install.h"
#include "early.h"
#include "installer.h"
#include "node.h"

/* The only filesystems an update drive may hold: a USB stick's usual ones.
 * Every other driver stays out of reach of whoever formats the stick. */
static const char *const update_drive_types[] = {"vfat", "exfat", "ext4"};

static void start_install(struct node *n, int bundle_fd);

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.kosb names of dir_fd (not dot files), at most BUNDLES_MAX, in name
 * order. Only names are read here; each file is opened (and its type
 * checked) when its turn comes. */
static void list_bundles(struct boot_updates *u) {
        int fd = openat(u->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd < 0 ? NULL : fdopendir(fd);

        u->count = u->next = 0;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        for (struct dirent *de; (de = readdir(d)) && u->count < BUNDLES_MAX;) {
                size_t len = strlen(de->d_name);
                if (len > 5 && strcmp(de->d_name + len - 5, ".kosb") == 0 && de->d_name[0] != '.')
                        if ((u->names[u->count] = strdup(de->d_name)))
                                u->count++;
        }
        closedir(d);
        qsort(u->names, u->count, sizeof u->names[0], compare_names);
}

static void free_bundle_names(struct boot_updates *u) {
        for (size_t i = 0; i < u->count; i++)
                free(u->names[i]);
        u->count = u->next = 0;
        if (u->dir_fd >= 0)
                close(u->dir_fd);
        u->dir_fd = -1;
}

/* Moves an inbox bundle to processed/ or rejected/ (beneath /data/kos, no
 * symlinks); when that fails it is deleted, never installed again. */
static void move_from_inbox(int inbox_fd, const char *file, bool installed) {
        const char *to = installed ? "processed" : "rejected";

        (void)mkdirat(data_kos_fd, to, 0755);
        _cleanup_close_ int dir = open_beneath(data_kos_fd, to, O_RDONLY | O_DIRECTORY, 0);
        if (dir < 0 || renameat(inbox_fd, file, dir, file) < 0)
                (void)unlinkat(inbox_fd, file, 0);
        (void)syncfs(data_kos_fd);
}

/* A KOS-UPDATE drive: one of update_drive_types, mounted read-only,
 * nosuid, nodev, noexec, nosymfollow. Returns its root's fd, or -1. */
static int mount_update_drive(struct node *n) {
        struct early_device dev;
        char device[256], type[256];
        bool allowed = false;

        if (early_find_device("LABEL=" KOS_LABEL_UPDATE, 0, &dev) < 0)
                return -1;
        escape_name(dev.path, device, sizeof device);
        escape_name(dev.type, type, sizeof type);
        for (size_t i = 0; i < ELEMENTSOF(update_drive_types); i++)
                allowed = allowed || strcmp(dev.type, update_drive_types[i]) == 0;
        if (!allowed) {
                event("update drive %s refused: it holds %s, and only vfat, exfat and ext4 drives are mounted", device,
                      type[0] ? type : "no known filesystem");
                return -1;
        }
        mkdir(UPDATE_MOUNT, 0700);
        if (mount(dev.path, UPDATE_MOUNT, dev.type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW, NULL) < 0) {
                event("cannot mount the update drive %s (%s): %m", device, type);
                return -1;
        }
        n->updates.drive_mounted = true;
        event("update drive %s found (%s)", device, type);
        int fd = open(UPDATE_MOUNT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -1 : fd;
}

/* The next bundle of the inbox, then of a drive; when none is left, the
 * boot goes on (hold or app). Called again after each install ends. */
static void install_next_bundle(struct node *n) {
        struct boot_updates *u = &n->updates;

        for (;;) {
                if (u->next == u->count) {
                        free_bundle_names(u);
                        if (u->source == FROM_INBOX) {
                                u->source = FROM_DRIVE;
                                if ((u->dir_fd = mount_update_drive(n)) >= 0)
                                        list_bundles(u);
                                continue;
                        }
                        if (u->drive_mounted && umount(UPDATE_MOUNT) == 0)
                                u->drive_mounted = false;
                        continue_boot(n);
                        return;
                }
                const char *file = u->names[u->next++], *kind = "?";
                struct install_job *job = &n->job;
                *job = (struct install_job){.source = u->source};
                snprintf(job->file, sizeof job->file, "%s", file);
                escape_name(file, job->name, sizeof job->name);
                int fd = open_regular_beneath(u->dir_fd, file, O_RDONLY, 0, &kind);
                if (fd == -EPERM) {
                        event("bundle %s refused: it is %s, not a regular file", job->name, kind);
                        if (u->source == FROM_INBOX)
                                move_from_inbox(u->dir_fd, file, false);
                        continue;
                }
                if (fd < 0) {
                        event("cannot open bundle %s: %s", job->name, strerror(-fd));
                        continue;
                }
                set_state(n, INSTALLING);
                event("installing bundle %s%s", u->source == FROM_INBOX ? DATA_KOS "/inbox/" : "", job->name);
                start_install(n, fd);
                return;
        }
}

/* Starts a pull in the installer child (kos-node-pull): the loop goes on. */
int start_pull(struct node *n, struct varlink_connection *caller) {
        struct installer_callbacks callbacks = {.progress = on_install_progress, .done = on_install_done, .userdata = n};

        n->job = (struct install_job){.source = FROM_REGISTRY, .caller = caller, .last_event_ns = kos_now_ns()};
        escape_name(n->update.registry, n->job.name, sizeof n->job.name);
        event("checking for an update at %s", n->job.name);
        int r = installer_start_pull(n->event, IMAGEFS_MOUNT, n->id, &callbacks);
        if (r < 0) {
                snprintf(n->last_poll, sizeof n->last_poll, "could not start: %s", strerror(-r));
                event("update check failed to start: %s", strerror(-r));
                schedule_poll(n);
                return r;
        }
        n->job.running = true;
        return 0;
}

/* A pull that installed a new manifest reboots into it, as a bundle from the
 * inbox does; anything else waits for the next poll. */
static void on_pull_done(struct node *n, int r, const struct kos_bundle_result *result) {
        struct install_job *job = &n->job;
        bool changed = r >= 0 && !result->already_active;

        if (r >= 0 && result->already_active)
                snprintf(n->last_poll, sizeof n->last_poll, "up to date: %s is installed and first in active", result->name);
        else if (r >= 0)
                snprintf(n->last_poll, sizeof n->last_poll,
                         "installed %s: fetched %u of %u components, %llu of %llu bytes", result->name, result->added,
                         result->components, (unsigned long long)(result->bytes_added - result->resumed_bytes),
                         (unsigned long long)result->components_bytes);
        else /* %.319s: cut where the result's buffer of 320 bytes cut it before */
                snprintf(n->last_poll, sizeof n->last_poll, "%s: %.319s", r == -EBADMSG ? "refused" : "failed",
                         r == -ECHILD           ? "the pull process died or could not run " KOS_NODE_PULL_PROGRAM
                         : result->error.msg[0] ? result->error.msg
                         : r == -ETIMEDOUT      ? "the pull did not end by its deadline and was killed"
                                                : strerror(-r));
        event("update from %s: %s", job->name, n->last_poll);
        if (job->caller)
                varlink_connection_reply(job->caller,
                                         r < 0 ? varlink_error(r == -EBADMSG ? "io.kos.Node.BundleRefused" : "io.kos.Node.Failed",
                                                               n->last_poll)
                                               : json_pack("{s:{s:s, s:b, s:i, s:I}}", "parameters", "manifest", result->name,
                                                           "changed", changed, "components_fetched", (int)result->added,
                                                           "bytes_fetched",
                                                           (json_int_t)(result->bytes_added - result->resumed_bytes)));
        job->caller = NULL;
        if (changed) {
                request_reboot(n, "to boot the new manifest");
                return;
        }
        schedule_poll(n);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        struct node *n = userdata;

        n->next_poll_usec = 0;
        if (n->job.running || n->state == REBOOTING || n->state == INSTALLING) {
                schedule_poll(n); /* an install runs: its turn comes later */
                return 0;
        }
        (void)start_pull(n, NULL); /* on failure it has scheduled the next */
        return 0;
}

/* The next poll: interval plus a random part of jitter, so a fleet booted
 * at once does not come back at once. */
void schedule_poll(struct node *n) {
        uint32_t random = 0;
        uint64_t now;

        if (!n->have_update_source || n->state == REBOOTING)
                return;
        if (getrandom(&random, sizeof random, GRND_NONBLOCK) != sizeof random)
                random = (uint32_t)kos_now_ns();
        uint64_t delay = (uint64_t)n->update.interval + (n->update.jitter ? random % (n->update.jitter + 1u) : 0);
        if (sd_event_now(n->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        n->next_poll_usec = now + delay * 1000000ULL;
        n->poll_timer = sd_event_source_disable_unref(n->poll_timer);
        if (sd_event_add_time(n->event, &n->poll_timer, CLOCK_MONOTONIC, n->next_poll_usec, 1000000ULL, on_poll, n) < 0) {
                n->next_poll_usec = 0;
                event("cannot arm the update poll timer");
        }
}

/* UPDATE_CONFIG_FILE, when the root has one (it is part of the signed root,
 * trusted like the keyring beside it). */
void load_update_source(struct node *n) {
        _cleanup_free_ char *text = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        size_t len;
        int r = kos_read_file_at(AT_FDCWD, UPDATE_CONFIG_FILE, UPDATE_CONFIG_MAX, &text, &len);

        if (r == -ENOENT)
                return;
        if (r < 0) {
                event("cannot read %s: %s; no updates from a registry", UPDATE_CONFIG_FILE, strerror(-r));
                return;
        }
        if (update_config_parse(text, len, &n->update, &why) < 0) {
                event("%s ignored: %s", UPDATE_CONFIG_FILE, why.msg);
                return;
        }
        n->have_update_source = true;
        char name[300];
        escape_name(n->update.registry, name, sizeof name);
        event("update source %s, polled every %u s (+ up to %u s)", name, n->update.interval, n->update.jitter);
}

void on_install_progress(uint64_t done, uint64_t total, void *userdata) {
        struct node *n = userdata;
        uint64_t now = kos_now_ns();

        n->job.done = done;
        n->job.total = total;
        if (now - n->job.last_event_ns < PROGRESS_EVENT_INTERVAL_NS)
                return;
        n->job.last_event_ns = now;
        event("installing bundle %s: %llu of %llu bytes", n->job.name, (unsigned long long)done, (unsigned long long)total);
}

static const char *install_error(int r, const struct kos_bundle_result *result) {
        if (r == -EBADMSG)
                return result->error.msg;
        if (r == -ECHILD)
                return "the installer process died";
        return strerror(-r);
}

/* The end of an install: logged, the inbox file moved, the API caller
 * answered; a new manifest from the inbox or a drive reboots into it. */
void on_install_done(int r, const struct kos_bundle_result *result, void *userdata) {
        struct node *n = userdata;
        struct install_job *job = &n->job;

        job->running = false;
        if (r >= 0 && result->already_active)
                event("manifest %s of %s is installed and active already", result->name, job->name);
        else if (r >= 0)
                event("installed manifest %s from %s%s: %u component(s) added, %u present", result->name, job->name,
                      job->source == FROM_API ? " through the API" : "", result->added, result->skipped);
        if (r >= 0 && result->warning[0])
                event("installed manifest %s, but cleanup failed: %s", result->name, result->warning);
        else if (r < 0 && job->source != FROM_REGISTRY)
                event("bundle %s refused: %s", job->name, install_error(r, result));
        if (job->source == FROM_REGISTRY) {
                on_pull_done(n, r, result);
                return;
        }
        if (job->source == FROM_API) {
                varlink_connection_reply(job->caller, r < 0 ? varlink_error("io.kos.Node.BundleRefused", install_error(r, result))
                                                            : json_pack("{s:{}}", "parameters"));
                return;
        }
        /* From the inbox, a failure that is not the bundle's fault (no space,
         * I/O) keeps it for the next boot. */
        if (job->source == FROM_INBOX && (r >= 0 || r == -EBADMSG))
                move_from_inbox(n->updates.dir_fd, job->file, r >= 0);
        if (r >= 0 && !result->already_active) {
                free_bundle_names(&n->updates);
                if (n->updates.drive_mounted)
                        umount(UPDATE_MOUNT);
                request_reboot(n, "to boot the new manifest");
                return;
        }
        install_next_bundle(n);
}

static void start_install(struct node *n, int bundle_fd) {
        struct installer_callbacks callbacks = {.progress = on_install_progress, .done = on_install_done, .userdata = n};
        int r = installer_start(n->event, &n->img, &n->ring, n->id, bundle_fd, &callbacks);

        n->job.running = r >= 0;
        n->job.last_event_ns = kos_now_ns();
        if (r < 0)
                on_install_done(r, &(struct kos_bundle_result){0}, n);
}

/* The inbox on the DataFS, then a drive labelled KOS-UPDATE if one is there. */
void process_updates(struct node *n) {
        n->updates = (struct boot_updates){.source = FROM_INBOX, .dir_fd = -1};
        if (data_kos_fd >= 0 && (n->updates.dir_fd = open_beneath(data_kos_fd, "inbox", O_RDONLY | O_DIRECTORY, 0)) >= 0)
                list_bundles(&n->updates);
        install_next_bundle(n);
}

/* After the updates: hold, or start the app; polling the registry starts. */
void continue_boot(struct node *n) {
        if (n->have_imagefs && n->have_keyring)
                schedule_poll(n);
        if (n->hold) {
                set_state(n, HOLDING);
                event("holding: the app waits for start-app");
        } else if (early_cmdline_get("kos.hold")) {
                n->hold = true;
                set_state(n, HOLDING);
                event("kos.hold: the app waits for start-app");
        } else
                start_app(n);
}
