/* SPDX-License-Identifier: MIT */
/* Node Manager's update source (node/update-config.c): one test per rule. */
#include <string.h>

#include "test.h"
#include "update-config.h"

static int parse(const char *text, struct update_config *c, struct kos_error *why) {
        return update_config_parse(text, strlen(text), c, why);
}

TEST(update_config_reads_every_key_and_defaults_jitter_to_a_tenth) {
        struct update_config c;
        struct kos_error why = KOS_ERROR_NULL;

        CHECK(parse("# fleet\nregistry = https://r.example/acme/device:stable\n\ninterval=600\n"
                    "credentials-file = /etc/kos/creds\r\nca-file = /etc/kos/ca.pem\n", &c, &why) == 0);
        CHECK(strcmp(c.registry, "https://r.example/acme/device:stable") == 0);
        CHECK(c.interval == 600 && c.jitter == 60);
        CHECK(strcmp(c.credentials_file, "/etc/kos/creds") == 0 && strcmp(c.ca_file, "/etc/kos/ca.pem") == 0);
        CHECK(parse("registry = r/x:y\n", &c, &why) == 0 && c.interval == 3600 && c.jitter == 360 && !c.credentials_file[0]);
        CHECK(parse("registry = r/x:y\njitter = 0\n", &c, &why) == 0 && c.jitter == 0);
}

TEST(update_config_rejects_missing_registry_unknown_or_repeated_keys) {
        struct update_config c;
        struct kos_error why = KOS_ERROR_NULL;

        CHECK(parse("interval = 600\n", &c, &why) == -EINVAL && strstr(why.msg, "no registry"));
        CHECK(parse("registry = r/x:y\nregistry = r/x:z\n", &c, &why) == -EINVAL && strstr(why.msg, "line 2: registry given twice"));
        CHECK(parse("registry = r/x:y\nproxy = x\n", &c, &why) == -EINVAL && strstr(why.msg, "unknown key"));
        CHECK(parse("registry r/x:y\n", &c, &why) == -EINVAL && strstr(why.msg, "line 1: expected key = value"));
}

TEST(update_config_rejects_bad_numbers_relative_paths_and_spaces) {
        struct update_config c;
        struct kos_error why = KOS_ERROR_NULL;

        CHECK(parse("registry = r/x:y\ninterval = 59\n", &c, &why) == -EINVAL);
        CHECK(parse("registry = r/x:y\ninterval = 10m\n", &c, &why) == -EINVAL);
        CHECK(parse("registry = r/x:y\ninterval = -600\n", &c, &why) == -EINVAL);
        CHECK(parse("registry = r/x:y\njitter = 99999999999\n", &c, &why) == -EINVAL);
        CHECK(parse("registry = r/x:y\nca-file = ca.pem\n", &c, &why) == -EINVAL && strstr(why.msg, "absolute"));
        CHECK(parse("registry = r/x y:z\n", &c, &why) == -EINVAL);
        CHECK(parse("registry = \n", &c, &why) == -EINVAL);
        CHECK(update_config_parse("registry = r/x:y\0junk", 22, &c, &why) == -EINVAL);
}
