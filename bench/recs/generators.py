"""Synthetic tenant populations for judging recommendations, each with a different structure.

Every generator returns tenants with a profile (industry label, size, sometimes a description)
and *timed* installs, so that the same population can be split at random, by each tenant's
last install, or at a point in time. None of them was written to fit the engine: each plants a
structure seen in real integration marketplaces, and the engine and the baselines are tuned on
a validation split of it, never on the test split (``evaluate.py``).

- ``stacks``: the original bench population. Tenants adopt planted "stacks" (the Google suite,
  an engineering stack, Shopify commerce, three niche stacks per industry) weighted by industry
  and size, each member with probability 0.7, plus independent Zipf-popularity noise; install
  order is random.
- ``sequential``: companies grow. Each install fills a *need* (a category) and the order of
  needs follows a company's stage (basics, then selling and money, then support and marketing,
  then analytics, data and people); the tool chosen for a need depends on the tenant's
  ecosystem (Google, Microsoft, Atlassian or none), industry and size. The question is the last
  install: what comes next.
- ``migrations``: ``sequential`` with correlated noise: a third of the needs are filled after a
  trial of two or three competing tools at once, keeping one (each other one stays installed
  half of the time); afterwards each tool that has a bigger competitor is migrated to it with
  probability 0.25, the old one kept installed half of the time. Competitors then look
  co-installed.
- ``freetext``: ``stacks`` with industries written by people: synonyms, spelling and case
  variants, rare one-off labels and 20% with none, descriptions for 40% of tenants, and fewer
  installs per tenant (more cold start).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import numpy as np

from marketplace_service.catalog.service import DEMO_CATALOG, demo_entry

INDUSTRIES = {
    "software": 0.20, "fintech": 0.15, "ecommerce": 0.15, "healthcare": 0.12,
    "manufacturing": 0.10, "media": 0.10, "nonprofit": 0.10, "education": 0.08,
}  # fmt: skip
BANDS = ((1, 10, 0.30), (11, 50, 0.30), (51, 200, 0.20), (201, 1000, 0.12),
         (1001, 5000, 0.05), (5001, 20000, 0.03))  # fmt: skip
CRMS = {"salesforce", "hubspot", "pipedrive", "zoho-crm"}
# name: (members, {industry: weight} (others 1.0), size lean: +1 large, -1 small, 0 none)
STACKS: dict[str, tuple[list[str], dict[str, float], int]] = {
    "google": (["gmail", "google-drive", "google-calendar", "google-sheets"],
               {"education": 2, "nonprofit": 2}, -1),
    "microsoft": (["microsoft-teams", "onedrive"], {"manufacturing": 2, "healthcare": 1.5}, 1),
    "atlassian": (["jira", "trello"], {"software": 2}, 0),
    "engineering": (["github", "linear", "pagerduty", "slack"], {"software": 4, "media": 1.5}, 0),
    "gitlab": (["gitlab", "jira", "slack"], {"software": 2, "manufacturing": 1.5}, 1),
    "growth": (["hubspot", "mailchimp", "intercom", "zoom"], {"ecommerce": 1.5, "media": 2}, -1),
    "enterprise-sales": (["salesforce", "slack", "zendesk", "snowflake"],
                         {"fintech": 2, "manufacturing": 1.5}, 1),
    "smb-sales": (["pipedrive", "xero", "google-sheets"], {"nonprofit": 0.5}, -1),
    "shopify": (["shopify", "stripe", "mailchimp", "quickbooks-online"], {"ecommerce": 6}, 0),
    "woo": (["woocommerce", "paypal", "sendgrid"], {"ecommerce": 4, "nonprofit": 1.5}, -1),
    "payments": (["stripe", "quickbooks-online", "twilio"], {"fintech": 4}, 0),
    "finance-ops": (["xero", "stripe", "airtable"], {"fintech": 2, "nonprofit": 1.5}, -1),
    "analytics": (["segment", "mixpanel", "snowflake", "google-analytics-4"],
                  {"software": 2, "media": 2, "ecommerce": 1.5}, 1),
    "warehouse": (["postgresql", "airtable", "notion"], {"software": 1.5}, 0),
    "support-fresh": (["freshdesk", "zoho-crm", "twilio"], {"healthcare": 1.5}, 0),
    "hr-small": (["bamboohr", "google-calendar"], {}, -1),
    "hr-large": (["workday", "microsoft-teams"], {"manufacturing": 1.5}, 1),
    "community": (["notion", "linear", "discord"], {"software": 1.5, "media": 1.5}, -1),
    "content": (["box", "asana", "zoom"], {"healthcare": 3, "education": 2}, 0),
    "studio": (["dropbox", "monday", "zoom"], {"media": 3}, 0),
}  # fmt: skip
NICHE_PER_INDUSTRY, NICHE_STACK = 12, 4
HORIZON_DAYS = 730.0  # the population's history: two years


@dataclass
class Tenant:
    id: uuid.UUID
    industry: str | None  # as the tenant wrote it
    size: int
    events: list[tuple[str, float]]  # (slug, day installed), oldest first
    description: str | None = None
    truth_industry: str = ""  # the generator's own (for reading results, never for ranking)
    extra: dict = field(default_factory=dict)

    @property
    def installed(self) -> list[str]:
        return [slug for slug, _ in self.events]


def catalog(n_items: int, rng: np.random.Generator) -> tuple[list[dict], list[tuple]]:
    """Catalog rows (the 44 demo entries, 12 niche entries per industry, generated long-tail
    entries up to ``n_items``) and every stack."""
    rows = [demo_entry(raw) for raw in json.loads(DEMO_CATALOG.read_text())]
    stacks = [(m, w, lean) for m, w, lean in STACKS.values()]
    for industry in INDUSTRIES:
        slugs = [f"{industry}-suite-{n}" for n in range(NICHE_PER_INDUSTRY)]
        for n, slug in enumerate(slugs):
            text = f"{NICHE_TEXT[industry]} records, reports and filings."
            rows.append(_entry(slug, f"{industry.title()} Suite {n}", industry, text))
        for s in range(0, NICHE_PER_INDUSTRY, NICHE_STACK):
            weights = {i: (8.0 if i == industry else 0.0) for i in INDUSTRIES}
            stacks.append((slugs[s : s + NICHE_STACK], weights, 0))
    words = ["invoice", "ledger", "payroll", "shipping", "inventory", "ticket", "chat", "survey",
             "booking", "fleet", "learning", "donor", "grant", "claims", "patient", "video",
             "podcast", "ads", "warehouse", "sensor"]  # fmt: skip
    tail = [f"tail-{n:05d}" for n in range(max(n_items - len(rows), 0))]
    for n, slug in enumerate(tail):
        picked = rng.choice(words, size=3, replace=False)
        rows.append(_entry(slug, f"Tail Connector {n:05d}", "other",
                           f"Syncs {picked[0]}, {picked[1]} and {picked[2]} records."))  # fmt: skip
    for s in range(0, len(tail), 5):  # long-tail stacks, each liked by one random industry
        liked = rng.choice(list(INDUSTRIES))
        stacks.append((tail[s : s + 5], {i: (0.3 if i == liked else 0.02) for i in INDUSTRIES}, 0))
    return rows, stacks


# What an industry's niche tools are about (their catalog descriptions), and words companies of
# that industry use about themselves (the ``freetext`` descriptions draw from both lists)
NICHE_TEXT = {
    "software": "A developer workflow tool for releases, builds and incidents:",
    "fintech": "A payments and lending compliance tool for transactions, ledgers and KYC:",
    "ecommerce": "An online store operations tool for orders, shipping and inventory:",
    "healthcare": "A clinical operations tool for patients, appointments and claims:",
    "manufacturing": "A factory operations tool for production lines, sensors and suppliers:",
    "media": "A publishing tool for videos, podcasts, audiences and ads:",
    "nonprofit": "A fundraising tool for donors, grants and volunteers:",
    "education": "A school administration tool for students, courses and learning:",
}
SELF_WORDS = {
    "software": ["developer", "releases", "saas", "engineering", "product", "builds"],
    "fintech": ["payments", "lending", "transactions", "banking", "compliance", "ledgers"],
    "ecommerce": ["store", "orders", "shipping", "retail", "inventory", "shop"],
    "healthcare": ["patients", "clinic", "appointments", "claims", "care", "medical"],
    "manufacturing": ["factory", "production", "suppliers", "sensors", "plant", "parts"],
    "media": ["videos", "podcasts", "audiences", "ads", "publishing", "studio"],
    "nonprofit": ["donors", "grants", "volunteers", "charity", "fundraising", "community"],
    "education": ["students", "courses", "learning", "school", "teachers", "campus"],
}
LABELS = {  # how people write their industry (the first is the canonical one)
    "software": ["software", "Software", "SaaS", "saas", "B2B SaaS", "software development",
                 "Information Technology", "IT services", "dev tools"],
    "fintech": ["fintech", "FinTech", "Fin-tech", "financial services", "Financial Technology",
                "payments", "banking", "lending"],
    "ecommerce": ["ecommerce", "E-commerce", "e-commerce", "online retail", "Retail", "D2C",
                  "online store"],
    "healthcare": ["healthcare", "Health care", "Healthcare", "health tech", "medical",
                   "clinics", "HealthTech"],
    "manufacturing": ["manufacturing", "Manufacturing", "industrial", "Industrial manufacturing",
                      "factory automation", "Automotive parts"],
    "media": ["media", "Media", "publishing", "Media & Entertainment", "entertainment",
              "digital media", "broadcasting"],
    "nonprofit": ["nonprofit", "Non-profit", "non profit", "NGO", "charity", "Not-for-profit"],
    "education": ["education", "Education", "EdTech", "ed tech", "higher education", "schools",
                  "e-learning"],
}  # fmt: skip


def _entry(slug: str, name: str, category: str, description: str) -> dict:
    return {"slug": slug, "name": name, "service_identifier": slug, "category": category,
            "vendor": "bench", "description": description, "is_featured": False}  # fmt: skip


def _profile(rng: np.random.Generator) -> tuple[str, int, int]:
    industries, shares = list(INDUSTRIES), np.array(list(INDUSTRIES.values()))
    industry = industries[rng.choice(len(industries), p=shares / shares.sum())]
    band = int(rng.choice(len(BANDS), p=np.array([b[2] for b in BANDS])))
    size = int(rng.integers(BANDS[band][0], BANDS[band][1] + 1))
    return industry, band, size


def _popularity(n: int, rng: np.random.Generator) -> np.ndarray:
    zipf = 1.0 / np.arange(1, n + 1)
    pop = np.empty(n)
    pop[rng.permutation(n)] = zipf / zipf.sum()
    return pop


def _timed(slugs: list[str], rng: np.random.Generator) -> list[tuple[str, float]]:
    """Installs in a random order, spread over the horizon."""
    order = rng.permutation(len(slugs))
    start = rng.uniform(0, HORIZON_DAYS * 0.6)
    days = np.sort(rng.uniform(start, HORIZON_DAYS, size=len(slugs)))
    return [(slugs[k], float(d)) for k, d in zip(order, days, strict=True)]


def stacks(n_tenants: int, rng: np.random.Generator, *, n_items: int = 0, describe: float = 0.0,
           install_rate: float = 1.0) -> tuple[list[dict], list[Tenant]]:  # fmt: skip
    rows, stack_list = catalog(n_items, rng)
    slugs = [r["slug"] for r in rows]
    pop = _popularity(len(slugs), rng)
    out = []
    for _ in range(n_tenants):
        industry, band, size = _profile(rng)
        weights = np.array([w.get(industry, 1.0) * (1.6 ** (lean * (band - 2)))
                            for _, w, lean in stack_list])  # fmt: skip
        n_stacks = min(1 + rng.poisson((0.6 + 0.25 * band) * install_rate),
                       int((weights > 0).sum()))  # fmt: skip
        chosen = rng.choice(len(stack_list), size=n_stacks, replace=False,
                            p=weights / weights.sum())  # fmt: skip
        installed = {m for s in chosen for m in stack_list[s][0] if rng.random() < 0.7}
        noise = rng.poisson(1.0 * install_rate)
        installed |= {slugs[i] for i in rng.choice(len(slugs), size=noise, p=pop)}
        crms = sorted(installed & CRMS)
        if len(crms) > 1 and rng.random() < 0.85:
            keep = crms[rng.integers(len(crms))]
            installed -= set(crms) - {keep}
        if not installed:
            installed = {slugs[int(rng.choice(len(slugs), p=pop))]}
        description = None
        if rng.random() < describe:
            description = " ".join(rows[rng.integers(len(rows))]["description"].split()[:12])
        members = {m for s in chosen for m in stack_list[s][0]}
        events = _timed(sorted(installed), rng)
        out.append(Tenant(uuid.uuid4(), industry, size, events, description,
                          truth_industry=industry, extra={"stacks": members}))  # fmt: skip
    return rows, out


def freetext(n_tenants: int, rng: np.random.Generator) -> tuple[list[dict], list[Tenant]]:
    rows, tenants = stacks(n_tenants, rng, install_rate=0.6)
    for t in tenants:
        roll = rng.random()
        if roll < 0.20:
            t.industry = None
        elif roll < 0.28:  # a one-off label nobody else wrote
            t.industry = f"{rng.choice(LABELS[t.truth_industry])} {rng.integers(1000)}"
        else:
            t.industry = str(rng.choice(LABELS[t.truth_industry]))
        if rng.random() < 0.4:
            words = rng.choice(SELF_WORDS[t.truth_industry], size=3, replace=False)
            t.description = f"We handle {words[0]}, {words[1]} and {words[2]} for our customers."
    return rows, tenants


# --- sequential adoption -------------------------------------------------------------------

# needs, in the order of a company's stages, with the tools that fill each need: (slug,
# ecosystem or None, {industry: weight}, size lean)
NEEDS: dict[str, tuple[int, list[tuple[str, str | None, dict[str, float], int]]]] = {
    "email": (0, [("gmail", "google", {}, -1), ("microsoft-teams", "microsoft", {}, 1)]),
    "files": (0, [("google-drive", "google", {"education": 2}, -1),
                  ("onedrive", "microsoft", {"manufacturing": 2}, 1),
                  ("dropbox", None, {"media": 3}, 0), ("box", None, {"healthcare": 3}, 1)]),
    "chat": (0, [("slack", None, {"software": 3}, 0), ("microsoft-teams", "microsoft", {}, 1),
                 ("discord", None, {"media": 2, "software": 1}, -1), ("zoom", None, {}, 0)]),
    "sheets": (0, [("google-sheets", "google", {}, -1), ("airtable", None, {}, 0),
                   ("notion", None, {"software": 2}, -1)]),
    "crm": (1, [("hubspot", None, {"media": 2, "ecommerce": 1.5}, -1),
                ("salesforce", None, {"fintech": 2, "manufacturing": 2}, 2),
                ("pipedrive", None, {"nonprofit": 1.5}, -2),
                ("zoho-crm", None, {"healthcare": 2}, 0)]),
    "money": (1, [("stripe", None, {"fintech": 4, "software": 2, "ecommerce": 2}, 0),
                  ("paypal", None, {"nonprofit": 3, "ecommerce": 1.5}, -1)]),
    "accounting": (1, [("quickbooks-online", None, {"ecommerce": 1.5}, 0),
                       ("xero", None, {"nonprofit": 2, "fintech": 1.5}, -1)]),
    "store": (1, [("shopify", None, {"ecommerce": 8}, 0),
                  ("woocommerce", None, {"ecommerce": 5, "nonprofit": 1}, -1)]),
    "projects": (2, [("jira", "atlassian", {"software": 3, "manufacturing": 1.5}, 1),
                     ("trello", "atlassian", {}, -1), ("asana", None, {"healthcare": 2}, 0),
                     ("linear", None, {"software": 3}, -1), ("monday", None, {"media": 3}, 0)]),
    "support": (2, [("zendesk", None, {"fintech": 2}, 1), ("intercom", None, {"software": 2}, -1),
                    ("freshdesk", None, {"healthcare": 2}, 0)]),
    "marketing": (2, [("mailchimp", None, {"ecommerce": 2, "nonprofit": 2}, -1),
                      ("sendgrid", None, {"software": 2}, 0), ("twilio", None, {"fintech": 2}, 0)]),
    "calendar": (2, [("google-calendar", "google", {"education": 2}, -1),
                     ("zoom", None, {"education": 2, "healthcare": 1.5}, 0)]),
    "code": (2, [("github", None, {"software": 6, "media": 1}, 0),
                 ("gitlab", None, {"software": 3, "manufacturing": 2}, 1)]),
    "analytics": (3, [("google-analytics-4", "google", {"ecommerce": 2, "media": 2}, -1),
                      ("mixpanel", None, {"software": 2}, 0),
                      ("segment", None, {"software": 1.5, "ecommerce": 1.5}, 1)]),
    "data": (3, [("snowflake", None, {"fintech": 2}, 2), ("postgresql", None, {"software": 2}, 0)]),
    "incidents": (3, [("pagerduty", None, {"software": 4, "fintech": 2}, 1)]),
    "people": (3, [("bamboohr", None, {}, -1), ("workday", None, {"manufacturing": 1.5}, 2)]),
}  # fmt: skip
# how much each industry cares for each need (others 1.0)
NEED_WEIGHT = {
    "store": {"ecommerce": 6.0, "nonprofit": 0.4, "software": 0.1, "fintech": 0.1,
              "healthcare": 0.1, "manufacturing": 0.2, "media": 0.3, "education": 0.1},
    "code": {"software": 4.0, "media": 0.8, "fintech": 1.5, "nonprofit": 0.1,
             "healthcare": 0.3, "education": 0.3, "ecommerce": 0.5},
    "incidents": {"software": 3.0, "fintech": 1.5, "nonprofit": 0.05, "education": 0.1,
                  "healthcare": 0.3, "media": 0.3},
    "money": {"fintech": 3.0, "ecommerce": 2.5, "nonprofit": 1.5, "manufacturing": 0.4},
    "data": {"software": 2.0, "fintech": 2.0, "nonprofit": 0.2, "education": 0.3},
}  # fmt: skip
# a company is about this far through its stages (by size band): a need of stage s is more
# likely next the closer s is to the stage the company has reached
MIGRATE_TO = {"pipedrive": "hubspot", "hubspot": "salesforce", "zoho-crm": "salesforce",
              "freshdesk": "zendesk", "intercom": "zendesk", "trello": "jira", "xero":
              "quickbooks-online", "bamboohr": "workday", "postgresql": "snowflake",
              "mailchimp": "sendgrid", "woocommerce": "shopify", "dropbox": "box"}  # fmt: skip


def sequential(n_tenants: int, rng: np.random.Generator, *, noise: bool = False
               ) -> tuple[list[dict], list[Tenant]]:  # fmt: skip
    """Companies filling needs in the order of their stages (``migrations``: with trials and
    migrations between competing tools)."""
    rows, _ = catalog(0, rng)
    slugs = [r["slug"] for r in rows]
    niche = {i: [s for s in slugs if s.startswith(f"{i}-suite-")] for i in INDUSTRIES}
    pop = _popularity(len(slugs), rng)
    out = []
    for _ in range(n_tenants):
        industry, band, size = _profile(rng)
        leaning = [0.45 - 0.05 * band, 0.15 + 0.07 * band, 0.15, 0.25 - 0.02 * band]
        ecosystem = rng.choice(["google", "microsoft", "atlassian", "none"], p=leaning)
        n = 1 + rng.poisson(2.0 + 0.6 * band)
        day = rng.uniform(0, HORIZON_DAYS * 0.8)
        events: list[tuple[str, float]] = []
        have: set[str] = set()
        filled: set[str] = set()
        stage = 0.0
        chances: dict[str, float] | None = None  # what the last install was drawn from
        for _ in range(n):
            day += rng.exponential(45.0)
            if day > HORIZON_DAYS:
                break
            step = None if noise else _chances(slugs, pop, niche[industry], have, filled, stage,
                                               industry, band, ecosystem)  # fmt: skip
            before = len(events)
            roll = rng.random()
            if roll < 0.15:  # an industry's own tool, in the order of its niche list
                pick = next((s for s in niche[industry] if s not in have), None)
                if pick is not None and rng.random() < 0.8:
                    events.append((pick, day))
                    have.add(pick)
                    chances = step
                    continue
            if roll < 0.25:  # anything at all, by popularity
                pick = slugs[int(rng.choice(len(slugs), p=pop))]
                if pick not in have:
                    events.append((pick, day))
                    have.add(pick)
                    chances = step
                continue
            open_needs = [k for k in NEEDS if k not in filled]
            if not open_needs:
                break
            w = _need_weights(open_needs, industry, stage)
            need = open_needs[int(rng.choice(len(open_needs), p=w / w.sum()))]
            filled.add(need)
            stage = min(stage + 0.5, 3.0)
            tools = [t for t in NEEDS[need][1] if t[0] not in have]
            if not tools:
                continue
            tw = _tool_weights(tools, ecosystem, industry, band)
            order = rng.choice(len(tools), size=len(tools), replace=False, p=tw / tw.sum())
            if noise and len(tools) > 1 and rng.random() < 0.33:  # a trial of competitors
                trial = [tools[k][0] for k in order[: 2 + int(rng.random() < 0.3)]]
                for slug in trial[1:]:
                    if rng.random() < 0.5:  # the loser stays installed half of the time
                        events.append((slug, day - rng.uniform(0, 3)))
                        have.add(slug)
            pick = tools[order[0]][0]
            events.append((pick, day))
            have.add(pick)
            chances = step if len(events) == before + 1 else None
        if noise:
            for slug in [s for s, _ in events]:
                if slug in MIGRATE_TO and rng.random() < 0.25 and MIGRATE_TO[slug] not in have:
                    day += rng.exponential(60.0)
                    if day > HORIZON_DAYS:
                        break
                    events.append((MIGRATE_TO[slug], day))
                    have.add(MIGRATE_TO[slug])
                    if rng.random() < 0.5:  # the old tool uninstalled: gone from the data
                        events = [(s, d) for s, d in events if s != slug]
                        have.discard(slug)
        if not events:
            events = [(slugs[int(rng.choice(len(slugs), p=pop))], day)]
            chances = None
        events.sort(key=lambda e: e[1])
        out.append(Tenant(uuid.uuid4(), industry, size, events, truth_industry=industry,
                          extra={"next": chances}))  # fmt: skip
    return rows, out


def _need_weights(needs: list[str], industry: str, stage: float) -> np.ndarray:
    """An industry's interest in each open need, by how near the need's stage is."""
    return np.array([NEED_WEIGHT.get(k, {}).get(industry, 1.0)
                     * np.exp(-1.5 * abs(NEEDS[k][0] - stage)) for k in needs])  # fmt: skip


def _tool_weights(tools: list[tuple], ecosystem: str, industry: str, band: int) -> np.ndarray:
    """Each tool's appeal: x4 in the tenant's ecosystem, its industry weight, its size lean."""
    return np.array([(4.0 if eco == ecosystem else 1.0) * ind.get(industry, 1.0)
                     * 1.5 ** (lean * (band - 2) / 2) for _, eco, ind, lean in tools])  # fmt: skip


def _chances(slugs: list[str], pop: np.ndarray, niche: list[str], have: set[str],
             filled: set[str], stage: float, industry: str, band: int, ecosystem: str
             ) -> dict[str, float]:  # fmt: skip
    """The chance of each connector being the one this step of ``sequential`` installs, given
    that it installs one, from the state no ranker sees (the ecosystem, the needs filled):
    the ``ceiling`` ranks by it."""
    out: dict[str, float] = {}
    first_niche = next((s for s in niche if s not in have), None)
    if first_niche is not None:
        out[first_niche] = 0.15 * 0.8
    by_popularity = 0.10 + 0.15 * (0.2 if first_niche is not None else 1.0)
    for slug, p in zip(slugs, pop, strict=True):
        if slug not in have:
            out[slug] = out.get(slug, 0.0) + by_popularity * p
    open_needs = [k for k in NEEDS if k not in filled]
    if open_needs:
        w = _need_weights(open_needs, industry, stage)
        for need, p_need in zip(open_needs, w / w.sum(), strict=True):
            tools = [t for t in NEEDS[need][1] if t[0] not in have]
            if not tools:
                continue
            tw = _tool_weights(tools, ecosystem, industry, band)
            for (slug, *_), p_tool in zip(tools, tw / tw.sum(), strict=True):
                out[slug] = out.get(slug, 0.0) + 0.75 * p_need * p_tool
    total = sum(out.values())
    return {slug: p / total for slug, p in out.items()}


def migrations(n_tenants: int, rng: np.random.Generator) -> tuple[list[dict], list[Tenant]]:
    return sequential(n_tenants, rng, noise=True)


GENERATORS = {
    "stacks": stacks,
    "sequential": sequential,
    "migrations": migrations,
    "freetext": freetext,
}
