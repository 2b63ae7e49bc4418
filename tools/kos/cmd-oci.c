/* SPDX-License-Identifier: MIT */
/* kos push | pull: a signed manifest and its components through an OCI registry. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "active.h"
#include "kos.h"
#include "oci.h"

#define CREDENTIALS_FILE_MAX 4096

struct registry_args {
        const char *user, *user_file, *ca_file;
        char *credentials; /* owned: from --user or the file */
};

/* "USER:PASSWORD" from --user, or the first line of --user-file (kept out
 * of the process list and shell history). */
static int load_credentials(const char *command, struct registry_args *a) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r;

        if (a->user && a->user_file)
                return usage_error(command, "--user and --user-file exclude each other");
        if (a->user) {
                a->credentials = strdup(a->user);
        } else if (a->user_file) {
                if ((r = read_path(a->user_file, CREDENTIALS_FILE_MAX, &data, &len)) < 0)
                        return fail(EXIT_USAGE, "cannot read %s: %s", a->user_file, file_error_string(r));
                data[strcspn(data, "\r\n")] = '\0';
                a->credentials = strdup(data);
                explicit_bzero(data, len);
        } else
                return EXIT_OK;
        if (!a->credentials)
                return fail(EXIT_USAGE, "out of memory");
        if (!strchr(a->credentials, ':'))
                return usage_error(command, "credentials are USER:PASSWORD");
        return EXIT_OK;
}

/* A number from the environment, 0 when unset or not a number. */
static uint64_t test_number(const char *name) {
        const char *s = getenv(name);
        char *end;

        if (!s || !*s)
                return 0;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        return errno || *end ? 0 : (uint64_t)v;
}

/* Tests only (tests/host/test-oci.sh): KOS_OCI_TEST_CUT_AFTER=N cuts each
 * transfer of a component after N bytes, as a broken connection would. */
static uint64_t test_cut_after(void) {
        return test_number("KOS_OCI_TEST_CUT_AFTER");
}

/* Tests only: KOS_OCI_TEST_STALL_SECONDS=N shortens the 30 s low-speed
 * window, and the bounds made from it, to N s (stricter only: the client
 * ignores values of 30 and over). */
static unsigned test_stall_seconds(void) {
        uint64_t v = test_number("KOS_OCI_TEST_STALL_SECONDS");
        return v < KOS_OCI_STALL_SECONDS ? (unsigned)v : 0;
}

static int open_client(const char *command, const char *reference, struct registry_args *a, struct kos_oci_client **ret) {
        struct kos_oci_ref ref;
        struct kos_error why = KOS_ERROR_NULL;
        int code;

        if (kos_oci_ref_parse(reference, &ref, &why) < 0)
                return usage_error(command, "%s: %s", reference, why.msg);
        if ((code = load_credentials(command, a)) != EXIT_OK)
                return code;
        struct kos_oci_client_options o = {.credentials = a->credentials, .ca_file = a->ca_file,
                                           .test_stall_seconds = test_stall_seconds()};
        if (kos_oci_client_new(&ref, &o, ret) < 0)
                return fail(EXIT_USAGE, "out of memory");
        return EXIT_OK;
}

static void registry_args_done(struct registry_args *a) {
        if (a->credentials)
                explicit_bzero(a->credentials, strlen(a->credentials));
        free(a->credentials);
}

#define REGISTRY_OPTIONS                                                                                        \
        {"user", required_argument, NULL, 'u'}, {"user-file", required_argument, NULL, 'U'},                   \
                {"ca-file", required_argument, NULL, 'C'}, {"keyring", required_argument, NULL, 'k'},          \
        {                                                                                                       \
                "help", no_argument, NULL, 'h'                                                                  \
        }
#define REGISTRY_HELP                                                                                             \
        "  --user USER:PASSWORD  registry credentials (basic, or for its token service)\n"                      \
        "  --user-file FILE      the same from the first line of FILE\n"                                         \
        "  --ca-file FILE        trust this PEM CA bundle for https (certificates are always verified)\n"

static double mib(uint64_t bytes) {
        return (double)bytes / 1048576.0;
}

int cmd_push(int argc, char **argv) {
        static const struct option options[] = {REGISTRY_OPTIONS, {"no-chunks", no_argument, NULL, 'N'},
                                                {"delta-from", required_argument, NULL, 'D'}, {}};
        struct registry_args a = {0};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_keyring ring;
        struct kos_oci_client *client = NULL;
        struct kos_oci_push_result result;
        struct kos_oci_push_options push_options = {0};
        const char *keyring = NULL;
        int c, code;

        while ((c = getopt_long(argc, argv, "u:U:C:k:ND:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos push [OPTIONS] IMAGEFS NAME [http[s]://]HOST[:PORT]/REPOSITORY{:TAG|@sha256:DIGEST}\n\n"
                               "Publishes the installed manifest NAME, its signature file and every\n"
                               "component it names as one OCI artifact (docs/format.md, \"OCI artifacts\"),\n"
                               "with each component's content-defined chunks and their index, so that a\n"
                               "device fetches only the chunks it lacks (\"Chunked components\").\n"
                               "Blobs the registry has already are not sent again. Prints the artifact's\n"
                               "digest; pushing to @sha256:DIGEST fails unless the artifact is that digest.\n\n" REGISTRY_HELP
                               "  --keyring DIR         push only if the manifest verifies against DIR\n"
                               "  --no-chunks           publish no chunks (devices fetch whole components)\n"
                               "  --delta-from OLD      also publish, for each component that changed since the\n"
                               "                        installed release OLD, a zstd delta from its old version\n");
                        return EXIT_OK;
                case 'u': a.user = optarg; break;
                case 'U': a.user_file = optarg; break;
                case 'C': a.ca_file = optarg; break;
                case 'k': keyring = optarg; break;
                case 'N': push_options.no_chunks = true; break;
                case 'D': push_options.delta_from = optarg; break;
                default: return usage_error("push", "unknown option");
                }
        }
        if (argc - optind != 3)
                return usage_error("push", "expected IMAGEFS, NAME and REFERENCE");
        if (keyring && (code = load_keyring_or_fail(keyring, &ring)) != EXIT_OK)
                return code;
        if ((code = open_client("push", argv[optind + 2], &a, &client)) != EXIT_OK ||
            (code = open_imagefs_or_fail(argv[optind], &img)) != EXIT_OK)
                goto out;
        int r = kos_oci_push(client, &img, argv[optind + 1], keyring ? &ring : NULL, &push_options, &result);
        if (r == -EBADMSG)
                code = fail(EXIT_INVALID, "cannot push %s: %s", argv[optind + 1], result.error.msg);
        else if (r < 0)
                code = fail(EXIT_USAGE, "pushing %s failed: %s", argv[optind + 1],
                            r == -ENOMEM ? strerror(-r) : kos_oci_client_error(client));
        else {
                printf("pushed %s to %s: %u of %u blobs uploaded, %.1f MiB of %.1f MiB (the registry had the others)\n",
                       argv[optind + 1], argv[optind + 2], result.uploaded, result.blobs, mib(result.bytes_uploaded),
                       mib(result.bytes));
                if (result.chunk_blobs)
                        printf("chunks: %u of %u chunk blobs uploaded, %.1f MiB of %.1f MiB\n", result.chunk_blobs_uploaded,
                               result.chunk_blobs, mib(result.chunk_bytes_uploaded), mib(result.chunk_bytes));
                if (result.deltas)
                        printf("deltas: %u components, %.1f MiB\n", result.deltas, mib(result.delta_bytes));
                printf("digest: %s\n", result.digest);
        }
out:
        kos_imagefs_close(&img);
        kos_oci_client_free(client);
        registry_args_done(&a);
        return code;
}

static void print_note(const char *line, void *userdata) {
        printf("%s\n", line);
        fflush(stdout);
}


static int report_pull(const char *reference, int r, struct kos_oci_client *client, const struct kos_bundle_result *result) {
        if (r == -EBADMSG)
                return fail(EXIT_INVALID, "%s refused, nothing changed: %s", reference, result->error.msg);
        if (r < 0)
                return fail(EXIT_USAGE, "pulling %s failed, nothing installed and nothing of it kept: %s", reference,
                            result->error.msg[0] ? result->error.msg : r == -ENOMEM ? strerror(-r) : kos_oci_client_error(client));
        if (result->already_active) {
                printf("%s is installed and first in active already: nothing changed\n", result->name);
                return EXIT_OK;
        }
        if (result->warning[0])
                fprintf(stderr, "kos: installed %s, but cleanup failed: %s (run 'kos gc' later)\n", result->name, result->warning);
        printf("pulled %s: fetched %u of %u components, %.1f MiB of %.1f MiB", result->name, result->added, result->components,
               mib(result->bytes_added - result->resumed_bytes), mib(result->components_bytes));
        if (result->resumed_bytes)
                printf(" (%.1f MiB more had come before the pull was interrupted)", mib(result->resumed_bytes));
        printf("; %u reused from the device; first in active, on trial\n", result->skipped);
        if (result->chunk_seeded_bytes || result->chunk_fetched_bytes)
                printf("chunks: %.1f MiB rebuilt from the device's components, %.1f MiB of chunks and indexes fetched\n",
                       mib(result->chunk_seeded_bytes), mib(result->chunk_fetched_bytes));
        return EXIT_OK;
}

int cmd_pull(int argc, char **argv) {
        static const struct option options[] = {REGISTRY_OPTIONS, {"tries", required_argument, NULL, 't'},
                                                {"keep", required_argument, NULL, 'K'}, {}};
        struct registry_args a = {0};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_keyring ring;
        struct kos_oci_client *client = NULL;
        struct kos_oci_pull_options o = {.note = print_note, .test_cut_after = test_cut_after()};
        struct kos_bundle_result result;
        struct progress p;
        const char *keyring = NULL;
        int c, code;

        while ((c = getopt_long(argc, argv, "u:U:C:k:t:K:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos pull --keyring DIR [OPTIONS] [http[s]://]HOST[:PORT]/REPOSITORY{:TAG|@sha256:DIGEST} IMAGEFS\n\n"
                               "Installs a manifest published with kos push, exactly as a bundle is\n"
                               "installed: the signature and the rollback floor are checked before any\n"
                               "component is fetched; only the components the ImageFS lacks are fetched\n"
                               "(rebuilt from the chunks of those it has where the artifact has chunks),\n"
                               "each hashed as it arrives, and only when the ImageFS has room for them; a\n"
                               "broken connection resumes where it stopped; a failed pull keeps nothing.\n"
                               "Exit 0 installed, 1 refused (nothing changed), 2 registry or I/O error.\n\n" REGISTRY_HELP
                               "  --keyring DIR         the trusted keys (required)\n"
                               "  --tries N, --keep N   as for kos bundle install\n");
                        return EXIT_OK;
                case 'u': a.user = optarg; break;
                case 'U': a.user_file = optarg; break;
                case 'C': a.ca_file = optarg; break;
                case 'k': keyring = optarg; break;
                case 't':
                        if (parse_count(optarg, 99, &o.install.tries) < 0)
                                return usage_error("pull", "--tries takes 1 to 99");
                        break;
                case 'K':
                        if (parse_count(optarg, KOS_ACTIVE_MAX, &o.install.keep) < 0)
                                return usage_error("pull", "--keep takes 1 to %d", KOS_ACTIVE_MAX);
                        break;
                default: return usage_error("pull", "unknown option");
                }
        }
        if (!keyring || argc - optind != 2)
                return usage_error("pull", "expected --keyring DIR, REFERENCE and IMAGEFS");
        if ((code = load_keyring_or_fail(keyring, &ring)) != EXIT_OK)
                return code;
        if ((code = open_client("pull", argv[optind], &a, &client)) != EXIT_OK ||
            (code = open_imagefs_or_fail(argv[optind + 1], &img)) != EXIT_OK)
                goto out;
        progress_init(&p, "pulling");
        o.install.progress = progress_print;
        o.install.userdata = &p;
        int r = kos_oci_pull(client, &img, &ring, &o, &result);
        progress_finish(&p);
        code = report_pull(argv[optind], r, client, &result);
out:
        kos_imagefs_close(&img);
        kos_oci_client_free(client);
        registry_args_done(&a);
        return code;
}
