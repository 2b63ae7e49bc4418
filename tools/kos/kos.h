/* SPDX-License-Identifier: MIT */
/* The kos host tool: shared helpers of its subcommands. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imagefs.h"
#include "keyring.h"
#include "manifest.h"
#include "verify.h"

/* Documented exit codes (docs/kos-tool.md). */
#define EXIT_OK 0
#define EXIT_INVALID 1 /* nothing valid / verification failed */
#define EXIT_USAGE 2   /* usage or I/O error */

int fail(int code, const char *format, ...) __attribute__((format(printf, 2, 3)));
int usage_error(const char *command, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* True when argv asks for --help / -h as its first argument. */
bool wants_help(int argc, char **argv);

/* "N", 1 to max, nothing else: 0, or -EINVAL. */
int parse_count(const char *arg, unsigned max, unsigned *ret);

/* Opens the TPM ($KOS_TPM, else /dev/tpmrm0 or /dev/tpm0): EXIT_OK, or the
 * exit code after saying why on standard error. */
struct kos_tpm;
int open_tpm_or_fail(struct kos_tpm *t);

/* Prints hashing progress on stderr when it is a terminal and the work has
 * taken more than a second. Pass as kos_progress_fn with a struct progress. */
struct progress {
        uint64_t start_ns;
        bool shown;
        const char *what;
};
void progress_init(struct progress *p, const char *what);
void progress_print(uint64_t done, uint64_t total, void *userdata);
void progress_finish(struct progress *p);

/* strerror() for the errors of kos_read_file_at() and kos_open_regular_at(),
 * saying "not a regular file" for -EBADFD. */
const char *file_error_string(int r);
/* Says why kos_manifest_load_*() failed for path (hint appended) and returns
 * the exit code: 2 when it could not be read, 1 when it is invalid. Releases
 * loaded. */
int fail_manifest_load(const char *path, struct kos_loaded_manifest *loaded, const char *hint);
/* Runs argv (no shell); with capture, its standard output goes there (up to
 * size, NUL-terminated), else to our standard error. 0 when it exits with 0,
 * -ECHILD when it fails, or a negative errno. */
int run_program(char *const argv[], char *capture, size_t size);
int read_path(const char *path, size_t cap, char **ret, size_t *ret_len);
int open_imagefs_or_fail(const char *path, struct kos_imagefs *ret);
int load_keyring_or_fail(const char *dir, struct kos_keyring *ret);

int cmd_keygen(int argc, char **argv);
int cmd_key_id(int argc, char **argv);
int cmd_imagefs(int argc, char **argv);
int cmd_component(int argc, char **argv);
int cmd_component_build(int argc, char **argv);
int cmd_manifest(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_activate(int argc, char **argv);
int cmd_deactivate(int argc, char **argv);
int cmd_mark_good(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_select(int argc, char **argv);
int cmd_tpm(int argc, char **argv);
int cmd_tpm_policy(int argc, char **argv);
int parse_pcr_value(const char *s, uint32_t *given, uint8_t values[24][KOS_SHA256_LEN]);
int cmd_bk_slots(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_mkboot(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_datafs(int argc, char **argv);
int cmd_mkinitrd(int argc, char **argv);
int cmd_revocation(int argc, char **argv);
int cmd_dbx(int argc, char **argv);

/* kos push, kos pull (cmd-oci.c): built into the host kos only (KOS_WITH_HOST). */
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
/* kos image (cmd-image.c): host kos only (KOS_WITH_HOST), it links libfdisk. */
int cmd_image(int argc, char **argv);
