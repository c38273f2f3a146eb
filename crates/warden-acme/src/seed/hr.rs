//! The HR directory (`hr.employees`): the six people of ACME.md and twenty more.

use crate::rng::Rng;
use crate::state::Employee;

/// `(user, name, title, team, base salary in USD per year)`.
#[rustfmt::skip]
const PEOPLE: &[(&str, &str, &str, &str, u64)] = &[
    ("alice", "Alice Chen", "Staff Software Engineer", "Platform", 212_000),
    ("bob", "Bob Martinez", "Software Engineer", "Payments", 148_000),
    ("carol", "Carol Okafor", "HR Business Partner", "People", 131_000),
    ("dave", "Dave Kowalski", "Senior Security Engineer", "Security", 189_000),
    ("erin", "Erin Walsh", "QA Contractor (Brightpath)", "Contractors", 94_000),
    ("frank", "Frank Delgado", "Engineering Manager", "Payments", 205_000),
    ("gwen.park", "Gwen Park", "Software Engineer", "Platform", 152_000),
    ("hiro.tanaka", "Hiro Tanaka", "Senior Software Engineer", "Billing", 176_000),
    ("priya.raman", "Priya Raman", "Data Engineer", "Data", 158_000),
    ("harriet.lane", "Harriet Lane", "Chief Executive Officer", "Executive", 390_000),
    ("maria.gonzalez", "Maria Gonzalez", "HR Generalist", "People", 96_000),
    ("omar.haddad", "Omar Haddad", "Security Analyst", "Security", 138_000),
    ("liam.oconnor", "Liam O'Connor", "Site Reliability Engineer", "Platform", 171_000),
    ("sofia.rossi", "Sofia Rossi", "Product Manager", "Payments", 167_000),
    ("kwame.mensah", "Kwame Mensah", "Software Engineer", "Identity", 150_000),
    ("yuki.sato", "Yuki Sato", "Engineering Manager", "Identity", 201_000),
    ("noah.fischer", "Noah Fischer", "Senior Software Engineer", "Payments", 181_000),
    ("ava.thompson", "Ava Thompson", "Financial Analyst", "Finance", 112_000),
    ("diego.alvarez", "Diego Alvarez", "Mobile Engineer", "Mobile", 155_000),
    ("fatima.zahra", "Fatima Zahra", "Legal Counsel", "Legal", 184_000),
    ("ethan.brooks", "Ethan Brooks", "Support Engineer", "Support", 98_000),
    ("chloe.martin", "Chloe Martin", "Product Designer", "Design", 139_000),
    ("ravi.iyer", "Ravi Iyer", "Data Scientist", "Data", 169_000),
    ("isabel.costa", "Isabel Costa", "Technical Recruiter", "People", 104_000),
    ("jonas.berg", "Jonas Berg", "Software Engineer", "Billing", 146_000),
    ("mei.lin", "Mei Lin", "VP Engineering", "Executive", 318_000),
];

const STREETS: &[&str] = &[
    "Alder Street",
    "Magnolia Avenue",
    "Linden Court",
    "Harbor View Drive",
    "Cypress Lane",
    "Juniper Way",
    "Sycamore Road",
    "Bayside Terrace",
    "Willow Glen Drive",
    "Orchard Place",
];

const CITIES: &[(&str, &str)] = &[
    ("Oakland, CA", "94612"),
    ("San Mateo, CA", "94401"),
    ("Berkeley, CA", "94703"),
    ("Daly City, CA", "94015"),
    ("San Jose, CA", "95126"),
    ("Alameda, CA", "94501"),
    ("Fremont, CA", "94538"),
];

/// The seeded directory, in a fixed order.
pub(crate) fn seed() -> Vec<Employee> {
    let mut rng = Rng::new(0xACE0_0001);
    PEOPLE
        .iter()
        .enumerate()
        .map(|(i, &(user, name, title, team, base))| {
            // A plausible SSN shape that no validator rejects outright (area 001-665 or
            // 667-899, group 01-99, serial 0001-9999); every value here is invented.
            let mut area = rng.range(101, 899);
            if area == 666 {
                area = 667;
            }
            let ssn = format!(
                "{area:03}-{:02}-{:04}",
                rng.range(1, 99),
                rng.range(1, 9999)
            );
            let street = rng.pick(STREETS).copied().unwrap_or("Alder Street");
            let (city, zip) = rng
                .pick(CITIES)
                .copied()
                .unwrap_or(("Oakland, CA", "94612"));
            let home_address = format!("{} {street}, {city} {zip}", rng.range(100, 4999));
            // 555-0100 to 555-0199 are the numbers reserved for fiction.
            let phone = format!("+1-415-555-01{:02}", i % 100);
            let salary = base + rng.range(0, 40) * 250;
            Employee {
                user: user.to_string(),
                name: name.to_string(),
                title: title.to_string(),
                team: team.to_string(),
                email: format!("{user}@acme.example"),
                phone,
                salary,
                ssn,
                home_address,
            }
        })
        .collect()
}

/// Given names of the generated employees.
const GIVEN: &[&str] = &[
    "Ada", "Ben", "Cleo", "Dmitri", "Elena", "Femi", "Greta", "Hamid", "Ines", "Jakob", "Keiko",
    "Lars", "Mina", "Nils", "Olga", "Pedro", "Qing", "Rosa", "Sanjay", "Tess", "Umar", "Vera",
    "Wen", "Ximena", "Yara", "Zeke",
];
/// Family names of the generated employees.
const FAMILY: &[&str] = &[
    "Abbott",
    "Baptiste",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fujita",
    "Garcia",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Kim",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Osei",
    "Petrov",
    "Quinn",
    "Reyes",
    "Schmidt",
    "Tran",
    "Ueda",
    "Vargas",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
];
/// (title, team, base salary) of the generated employees.
const ROLES: &[(&str, &str, u64)] = &[
    ("Software Engineer", "Payments", 145_000),
    ("Senior Software Engineer", "Platform", 178_000),
    ("Site Reliability Engineer", "Platform", 168_000),
    ("Data Engineer", "Data", 155_000),
    ("Product Manager", "Billing", 160_000),
    ("Support Engineer", "Support", 96_000),
    ("Account Executive", "Sales", 120_000),
    ("Financial Analyst", "Finance", 110_000),
    ("Product Designer", "Design", 135_000),
    ("Security Analyst", "Security", 136_000),
    ("Mobile Engineer", "Mobile", 152_000),
    ("Technical Writer", "Docs", 105_000),
];

/// The seeded directory, then generated employees up to `total` in all (a directory large
/// enough to page through; the same on every run). Fewer than the seeded people: the seeded
/// directory as it is.
pub(crate) fn with_generated(total: usize) -> Vec<Employee> {
    let mut out = seed();
    let mut rng = Rng::new(0xACE0_5000);
    let mut i = 0usize;
    while out.len() < total {
        i += 1;
        let given = rng.pick(GIVEN).copied().unwrap_or("Ada");
        let family = rng.pick(FAMILY).copied().unwrap_or("Abbott");
        let (title, team, base) =
            rng.pick(ROLES)
                .copied()
                .unwrap_or(("Software Engineer", "Payments", 145_000));
        let user = format!(
            "{}.{}{i}",
            given.to_ascii_lowercase(),
            family.to_ascii_lowercase()
        );
        let street = rng.pick(STREETS).copied().unwrap_or("Alder Street");
        let (city, zip) = rng
            .pick(CITIES)
            .copied()
            .unwrap_or(("Oakland, CA", "94612"));
        out.push(Employee {
            name: format!("{given} {family}"),
            title: title.to_string(),
            team: team.to_string(),
            email: format!("{user}@acme.example"),
            phone: format!("+1-415-555-01{:02}", i % 100),
            salary: base + rng.range(0, 40) * 250,
            ssn: format!(
                "{:03}-{:02}-{:04}",
                rng.range(101, 665),
                rng.range(1, 99),
                rng.range(1, 9999)
            ),
            home_address: format!("{} {street}, {city} {zip}", rng.range(100, 4999)),
            user,
        });
    }
    out
}
