//! The role matrix of the protected routes: one table, deny by default. A path
//! outside every area is not routed at all; a role or method the table does not
//! name gets 403.

use hyper::Method;

/// A protected area of the CRM API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Users,
    Leads,
    Quotations,
    Ai,
    Jobs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET and HEAD only.
    Read,
    /// Every method.
    Write,
}

/// A role and what it may do.
pub type Grant = (&'static str, Access);

/// Who may do what, per area: the area, its path prefix, its grants.
pub const MATRIX: &[(Area, &str, &[Grant])] = &[
    (Area::Users, "/api/users", &[("admin", Access::Write)]),
    (Area::Leads, "/api/leads", &[("admin", Access::Write), ("sales_agent", Access::Write), ("support", Access::Read)]),
    (
        Area::Quotations,
        "/api/quotations",
        &[("admin", Access::Write), ("sales_agent", Access::Write), ("support", Access::Read)],
    ),
    (Area::Ai, "/api/ai", &[("admin", Access::Write), ("sales_agent", Access::Write)]),
    (
        Area::Jobs,
        "/api/jobs",
        &[
            ("admin", Access::Write),
            ("operations_manager", Access::Write),
            ("operator", Access::Write),
            ("support", Access::Read),
        ],
    ),
];

/// The area a path belongs to: its prefix, exactly or followed by `/`.
pub fn area(path: &str) -> Option<Area> {
    MATRIX
        .iter()
        .find(|(_, prefix, _)| path == *prefix || path.strip_prefix(prefix).is_some_and(|r| r.starts_with('/')))
        .map(|(a, ..)| *a)
}

/// Whether `role` may use `method` in `area`.
pub fn allows(area: Area, role: &str, method: &Method) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD);
    MATRIX
        .iter()
        .filter(|(a, ..)| *a == area)
        .flat_map(|(_, _, grants)| grants.iter())
        .any(|(r, access)| *r == role && (*access == Access::Write || read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix() {
        assert_eq!(area("/api/leads"), Some(Area::Leads));
        assert_eq!(area("/api/leads/42/notes"), Some(Area::Leads));
        assert_eq!(area("/api/leadsX"), None);
        assert_eq!(area("/api/billing"), None);
        assert!(allows(Area::Users, "admin", &Method::DELETE));
        assert!(!allows(Area::Users, "support", &Method::GET));
        assert!(allows(Area::Leads, "support", &Method::GET));
        assert!(!allows(Area::Leads, "support", &Method::POST));
        assert!(!allows(Area::Ai, "operator", &Method::GET));
        assert!(allows(Area::Jobs, "operator", &Method::PATCH));
        assert!(!allows(Area::Jobs, "sales_agent", &Method::GET));
        assert!(!allows(Area::Leads, "root", &Method::GET));
    }
}
