/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tpm.h"

#define MAX_TESTS 256

static struct {
        const char *name;
        test_fn fn;
} tests[MAX_TESTS];
static size_t n_tests;
static char tmpdir[256];

void test_register(const char *name, test_fn fn) {
        if (n_tests < MAX_TESTS)
                tests[n_tests++] = (typeof(tests[0])){name, fn};
}

const char *test_tmpdir(void) {
        return tmpdir;
}

int main(int argc, char **argv) {
        int failures = 0;

        kos_tpm_select("none"); /* hermetic: never the TPM of the machine running the tests */

        for (size_t i = 0; i < n_tests; i++) {
                if (argc > 1 && !strstr(tests[i].name, argv[1]))
                        continue;
                int failed = 0;
                snprintf(tmpdir, sizeof tmpdir, "/tmp/kos-unit-XXXXXX");
                if (!mkdtemp(tmpdir)) {
                        perror("mkdtemp");
                        return 2;
                }
                tests[i].fn(&failed);
                char cmd[300];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", tmpdir);
                printf("%s %s\n", failed ? "FAIL" : "PASS", tests[i].name);
                fflush(stdout);
                failures += failed;
        }
        return failures ? 1 : 0;
}
