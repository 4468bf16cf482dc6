/*
 * policy_opts.c - the --fail-on and --allow options that check and scan
 * share: one parser, one wording of their usage errors.
 *
 * Relies on scan/policy.h for the policy and cli.h for usage errors.
 */
#include <stdlib.h>

#include "../scan/policy.h"
#include "cli.h"

int qc_cli_policy_opt(struct qc_policy *p, char opt, const char *arg)
{
	if (opt == 'F') {
		if (!qc_policy_parse_fail_on(arg, &p->fail_on))
			return qc_usage_error("--fail-on must be corruption, leak or warning, not '%s'", arg);
		return 0;
	}
	char *bad = NULL;
	if (!qc_policy_allow_list(p, arg, &bad)) {
		int r = qc_usage_error("--allow: unknown problem code '%s' (see --list-problems)",
				       bad ? bad : arg);
		free(bad);
		return r;
	}
	return 0;
}
