"""What the rules are given, built in a line: users as the look-up reports them, contacts,
deliveries, the site's roles and the policy; and hypothesis strategies for each."""
from __future__ import annotations

from hypothesis import strategies as st

from wpf_bridge.accounts import POWERS, Contact, Lookup, Standing, User
from wpf_bridge.fieldmap import FieldMap
from wpf_bridge.roles import SiteRoles
from wpf_bridge.rules import Policy
from wpf_bridge.types import Delivery

#: A site's roles as WordPress ships them, two harmless custom ones and one that carries power.
SITE = SiteRoles({
    "subscriber": frozenset({"read"}),
    "contributor": frozenset({"read", "edit_posts"}),
    "author": frozenset({"read", "edit_posts", "publish_posts", "upload_files"}),
    "editor": frozenset({"read", "edit_posts", "edit_others_posts", "unfiltered_html"}),
    "administrator": frozenset({"read", "manage_options", "edit_users", "promote_users"}),
    "customer": frozenset({"read"}),
    "member": frozenset({"read"}),
    "shop_boss": frozenset({"read", "edit_users"}),
})
FIELDS = FieldMap(
    fields={"first_name": "str::first", "last_name": "str::last", "user_email": "str::email",
            "user_login": "str:cm:username", "user_pass": "str:cm:password"},
    meta={"company": "str:cm:company"},
)
POLICY = Policy(allowed_roles=frozenset({"customer", "member", "subscriber"}), field_map=FIELDS)
CONTACT_ID = "0061b12ed91681ad2bbe4100"
OTHER_CONTACT_ID = "0061b12ed91681ad2bbe4999"


ONE_SITE = object()  # user(): one site, where the user has its roles


def user(user_id: int = 7, roles: tuple[str, ...] = ("subscriber",), *,
         sites=ONE_SITE, **extra) -> User:
    """A user as the look-up reports them (``sites=None``: by a plugin older than 1.4.0); by
    default a subscriber of one site, holding nothing."""
    if sites is ONE_SITE:
        sites = (Standing(1, roles, ()),)
    return User(user_id, extra.pop("username", "jane"), extra.pop("email", "jane@example.test"), roles,
                frozenset({"read"}), sites=sites, **extra)


def contact(contact_id: str = CONTACT_ID, email: str | None = "jane@example.test", tags=(), **fields) -> Contact:
    return Contact(contact_id, {"str::email": email, "str::first": "Jane", "str::last": "Doe", "tags": list(tags),
                                **fields})


def delivery(action: str = "add", role: str | None = None, send_notification: bool = False,
             delivery_id: str = "d-1") -> Delivery:
    return Delivery(delivery_id, action, CONTACT_ID, None, role, send_notification)


def by_contact_id(found: User) -> Lookup:
    return Lookup(found, found)


def by_email(found: User) -> Lookup:
    return Lookup(None, found)


NOBODY = Lookup(None, None)

# hypothesis: roles and users as any site of a network may hold them

GRANTABLE = st.sampled_from(sorted(POLICY.grantable))
POWER = st.sampled_from(sorted(POWERS))
NOT_GRANTABLE = st.sampled_from(["author", "contributor", "editor", "administrator", "shop_boss"]) | st.text(
    "abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda role: role not in POLICY.grantable)
ANY_ROLE = GRANTABLE | NOT_GRANTABLE
SITE_IDS = st.integers(1, 60)


def harmless_sites() -> st.SearchStrategy[tuple[Standing, ...]]:
    """Every site a user stands on, each with grantable roles only and no power."""
    site = st.builds(Standing, SITE_IDS, st.lists(GRANTABLE, max_size=2).map(tuple), st.just(()))
    return st.lists(site, min_size=1, max_size=4).map(tuple)


@st.composite
def privileged_users(draw) -> User:
    """A user who holds, on one site among harmless ones, something a webhook may not grant: a role
    outside the grantable ones, a listed capability, super admin, a site running code the look-up
    could not ask; or whose plugin is too old to say."""
    sites = list(draw(harmless_sites()))
    kind = draw(st.sampled_from(["role", "power", "super admin", "unseen", "too old"]))
    roles = tuple(draw(st.lists(GRANTABLE, max_size=2)))
    bad = {
        "role": lambda: Standing(draw(SITE_IDS), (*roles, draw(NOT_GRANTABLE)), ()),
        "power": lambda: Standing(draw(SITE_IDS), roles, tuple(draw(st.lists(POWER, min_size=1, max_size=3)))),
        "unseen": lambda: Standing(draw(SITE_IDS), roles, (), ("members-only.php", "theme:shop")),
    }
    if kind in bad:
        sites.insert(draw(st.integers(0, len(sites))), bad[kind]())
    return user(draw(st.integers(1, 10**6)), sites=None if kind == "too old" else tuple(sites),
                super_admin=kind == "super admin", contact_id=draw(st.sampled_from(["", CONTACT_ID])),
                created_for=draw(st.sampled_from(["", CONTACT_ID])))


ACTIONS = ("add", "update", "update_tags")


def decide(action: str, found: Lookup, the_contact: Contact | None = None, role: str | None = None, *,
           send_notification: bool = False, site: SiteRoles = SITE, policy: Policy = POLICY):
    """The decision of ``action`` for a delivery asking ``role``, given what the look-up found."""
    from wpf_bridge.rules import decide_add, decide_update, decide_update_tags

    the_contact = the_contact or contact()
    the_delivery = delivery(action, role, send_notification)
    if action == "add":
        return decide_add(the_delivery, the_contact, found, site, policy)
    if action == "update":
        return decide_update(the_delivery, the_contact, found, site, policy)
    return decide_update_tags(the_contact, found, site, policy)
