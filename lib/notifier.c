/* SPDX-License-Identifier: MIT */
/* What every notifier backend shares. */
#include <stddef.h>

#include "notifier.h"
#include "util.h"

APQ_EXPORT void apq_notifier_free(struct apq_notifier *n)
{
	if (n)
		n->ops->destroy(n);
}
