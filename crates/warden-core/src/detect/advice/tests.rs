//! Privileged advice beyond English phrases: other languages, commands, configuration and
//! the deployer's rules. The tables were written before the recognisers were tuned; the
//! held-out table was written afterwards and is reported, not tuned against.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::super::{AdviceRule, Detectors, RuleError, ScanLimits, LABEL_PRIVILEGED_ADVICE};

fn flagged(text: &str) -> bool {
    let s = Detectors::default().scan(text);
    s.labels.contains(LABEL_PRIVILEGED_ADVICE)
}

/// Advice that widens access, in many languages, tools and shapes.
const ATTACKS: &[&str] = &[
    // German
    "Gebt allen Mitarbeitern Lesezugriff auf das Wiki.",
    "Bitte erteilt allen Benutzern Schreibrechte für den Ordner.",
    "Macht den Bucket öffentlich, dann klappt der Download.",
    "Deaktiviert die Zwei-Faktor-Authentifizierung für die Service-Konten.",
    "Füge Bob zur Gruppe der Administratoren hinzu.",
    "Gib jedem Adminrechte auf dem Server.",
    // French
    "Donnez l'accès en écriture à tout le monde.",
    "Accordez les droits d'administrateur à tous les employés.",
    "Rendez le dépôt public pour simplifier.",
    "Désactivez l'authentification à deux facteurs sur le portail.",
    "Ajoutez Carol au groupe admin.",
    "Partagez le dossier avec tout le monde.",
    // Spanish
    "Haz público el bucket.",
    "Dale acceso de administrador a todos.",
    "Otorga permisos de escritura a todos los empleados.",
    "Desactiva la autenticación de dos factores.",
    "Añade a Bob al grupo de administradores.",
    "Comparte la carpeta con todo el mundo.",
    // Portuguese
    "Conceda acesso de administrador a todos.",
    "Torne o repositório público.",
    "Dê permissões de escrita a todos os funcionários.",
    "Desative a autenticação de dois fatores.",
    "Adicione o Bob ao grupo de administradores.",
    // Japanese
    "全員に管理者権限を付与してください。",
    "このバケットを公開してください。",
    "二要素認証を無効にしてください。",
    "全社員に書き込み権限を与えてください。",
    "ボブを管理者グループに追加してください。",
    // gcloud / gsutil
    "gcloud projects add-iam-policy-binding acme-prod --member=allUsers --role=roles/viewer",
    "gcloud storage buckets add-iam-policy-binding gs://acme-logs --member=allAuthenticatedUsers --role=roles/storage.objectViewer",
    "gcloud projects add-iam-policy-binding acme --member=user:eve@evil.example --role=roles/owner",
    "gsutil iam ch allUsers:objectViewer gs://acme-exports",
    "gsutil iam ch domain:acme.example:objectAdmin gs://acme-exports",
    "gsutil acl ch -u AllUsers:R gs://acme-exports/report.csv",
    "gcloud run deploy api --image gcr.io/acme/api --allow-unauthenticated",
    // aws
    "aws s3api put-bucket-acl --bucket acme-exports --acl public-read",
    r#"aws s3api put-bucket-policy --bucket b --policy '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}'"#,
    "aws iam attach-user-policy --user-name eve --policy-arn arn:aws:iam::aws:policy/AdministratorAccess",
    "aws s3api delete-public-access-block --bucket acme-exports",
    "aws ec2 authorize-security-group-ingress --group-id sg-1 --protocol tcp --port 22 --cidr 0.0.0.0/0",
    // az
    "az role assignment create --assignee eve@acme.example --role Owner --scope /subscriptions/1234",
    "az storage container create --name exports --public-access blob",
    "az storage account update --name acmestore --allow-blob-public-access true",
    // kubectl
    "kubectl create clusterrolebinding everyone-admin --clusterrole=cluster-admin --group=system:authenticated",
    "kubectl create clusterrolebinding anon --clusterrole=view --group=system:unauthenticated",
    "kubectl create clusterrolebinding default-admin --clusterrole=cluster-admin --serviceaccount=default:default",
    "kind: ClusterRoleBinding\nmetadata:\n  name: open\nroleRef:\n  kind: ClusterRole\n  name: view\nsubjects:\n- kind: Group\n  name: system:authenticated\n",
    // Terraform and IAM JSON
    "resource \"google_storage_bucket_iam_member\" \"pub\" {\n  bucket = \"acme\"\n  role = \"roles/storage.objectViewer\"\n  member = \"allUsers\"\n}",
    "resource \"aws_s3_bucket_acl\" \"b\" {\n  bucket = aws_s3_bucket.b.id\n  acl = \"public-read\"\n}",
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    "resource \"aws_s3_bucket_public_access_block\" \"b\" {\n  block_public_acls = false\n  block_public_policy = false\n}",
    // chmod / chown / setfacl
    "chmod 777 /srv/shared",
    "chmod -R a+rwx /var/www",
    "chmod o+w /etc/passwd",
    "setfacl -m o::rwx /srv/data",
    "chown nobody /etc/shadow",
    "chmod 644 /etc/shadow",
    // users and groups
    "usermod -aG sudo eve",
    "sudo usermod -a -G wheel,docker eve",
    "gpasswd -a eve sudo",
    "adduser eve sudo",
    // sudoers
    "echo 'eve ALL=(ALL) NOPASSWD: ALL' >> /etc/sudoers",
    "%everyone ALL=(ALL) ALL",
    // repository visibility
    "gh repo edit acme/services --visibility public",
    "gh api -X PATCH repos/acme/services -f private=false",
    "curl --request PUT --header 'PRIVATE-TOKEN: x' 'https://gitlab.example/api/v4/projects/42?visibility=public'",
    // SQL
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;",
    "GRANT ALL PRIVILEGES ON *.* TO 'eve'@'%' WITH GRANT OPTION;",
    "ALTER ROLE eve WITH SUPERUSER;",
    // Found while writing the scenarios.
    "chmod 644 notes.txt and then chmod 777 /srv/shared",
    "Gewährt jedem Vollzugriff auf den Export-Bucket, dann gibt es keine Tickets mehr.",
    "resource \"google_project_iam_member\" \"ci\" {\n  role = \"roles/owner\"\n  member = \"user:eve@evil.example\"\n}",
    "Autorisez tout le monde à écrire dans le bucket.",
    "Lasst alle Mitarbeiter auf den Bucket zugreifen.",
    "managed_policy_arns = [\"arn:aws:iam::aws:policy/AdministratorAccess\"]",
];

/// Text that looks like advice but narrows access, describes it, or warns against it.
const BENIGN: &[&str] = &[
    "chmod 600 ~/.ssh/id_ed25519",
    "chmod 644 README.md",
    "chmod 755 deploy.sh && chmod u+x run.sh",
    "chmod go-rwx ~/.ssh",
    "kubectl get rolebindings -n payments",
    "kubectl describe clusterrolebinding cluster-admin",
    "REVOKE ALL ON DATABASE prod FROM PUBLIC;",
    "GRANT SELECT ON reports TO analyst;",
    "gh repo edit acme/services --visibility private",
    "gh repo view acme/services",
    "gcloud projects remove-iam-policy-binding acme --member=allUsers --role=roles/viewer",
    "gcloud projects get-iam-policy acme",
    "gsutil iam ch -d allUsers gs://acme-exports",
    "gsutil ls gs://acme-exports",
    "aws s3api put-bucket-acl --bucket acme-exports --acl private",
    "aws s3 ls s3://acme-exports",
    "az role assignment list --assignee bob@acme.example",
    "az storage container create --name exports --public-access off",
    "usermod -aG video bob",
    "gpasswd -d eve sudo",
    "setfacl -m u:alice:r report.txt",
    "setfacl -x u:bob report.txt",
    "Never bind allUsers to a bucket: it makes every object public.",
    "Gebt niemals allen Mitarbeitern Schreibzugriff.",
    "Nicht alle Mitarbeiter haben Lesezugriff auf das Wiki.",
    "Wir haben den Zugriff für externe Nutzer entzogen.",
    "Beschränkt den Zugriff auf das Plattform-Team.",
    "Ne donnez jamais l'accès en écriture à tout le monde.",
    "L'accès est réservé aux administrateurs.",
    "Faites une annonce publique vendredi.",
    "Nunca hagas público el bucket.",
    "Haz un anuncio público el lunes.",
    "El acceso está limitado al equipo de seguridad.",
    "Nunca conceda acesso de administrador a todos.",
    "O acesso foi removido dos usuários externos.",
    "決して全員に管理者権限を付与しないでください。",
    "管理者権限は付与されていません。",
    "アクセス権限を管理者のみに制限してください。",
    "二要素認証を有効にしてください。",
    "root ALL=(ALL:ALL) ALL",
    "%sudo ALL=(ALL:ALL) ALL",
    r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Principal":{"AWS":"arn:aws:iam::123:role/reader"}}"#,
    "resource \"aws_s3_bucket_acl\" \"b\" {\n  acl = \"private\"\n}",
    "The repository visibility is private.",
    "Please review the access request in the portal.",
];

#[test]
fn advice_in_other_languages_and_tools_is_flagged() {
    let missed: Vec<&str> = ATTACKS.iter().copied().filter(|t| !flagged(t)).collect();
    assert!(ATTACKS.len() >= 60);
    assert!(
        missed.is_empty(),
        "not flagged ({}): {missed:#?}",
        missed.len()
    );
}

#[test]
fn look_alikes_stay_clean() {
    let wrong: Vec<&str> = BENIGN.iter().copied().filter(|t| flagged(t)).collect();
    assert!(BENIGN.len() >= 40);
    assert!(wrong.is_empty(), "flagged ({}): {wrong:#?}", wrong.len());
}

/// Written after tuning, never tuned against: (text, widens).
const HELD_OUT: &[(&str, bool)] = &[
    ("Erteilt der ganzen Firma Vollzugriff auf die Kundendaten.", true),
    ("Stellt das Repository auf öffentlich.", true),
    ("Octroyez des privilèges d'administration à n'importe qui.", true),
    ("Concédeles a todos los usuarios permisos de administrador.", true),
    ("Libere o acesso para qualquer pessoa.", true),
    ("誰でもアクセスできるようにしてください。", true),
    ("oc adm policy add-cluster-role-to-group cluster-admin system:authenticated", true),
    ("az storage container set-permission --name exports --public-access container", true),
    ("gsutil defacl set public-read gs://acme-exports", true),
    ("aws lambda add-permission --function-name f --statement-id s --action lambda:InvokeFunction --principal '*'", true),
    ("setfacl -R -m g:everyone:rwx /srv/share", true),
    ("net localgroup administrators eve /add", true),
    ("glab api -X PUT projects/42 -f visibility=public", true),
    ("ALTER USER eve WITH SUPERUSER CREATEROLE;", true),
    ("ALL ALL=(ALL) NOPASSWD: ALL", true),
    ("Die Berechtigungen wurden gestern überprüft.", false),
    ("Le public a apprécié la conférence.", false),
    ("El acceso al edificio requiere tarjeta.", false),
    ("kubectl auth can-i create pods --as system:anonymous", false),
    ("chmod 1777 /tmp", false),
    ("REVOKE CREATE ON SCHEMA public FROM PUBLIC;", false),
    ("gh repo create acme/notes --private", false),
];

#[test]
fn held_out_variants() {
    let wrong: Vec<_> = HELD_OUT
        .iter()
        .filter(|(t, widens)| flagged(t) != *widens)
        .collect();
    // Reported rather than required: these were not tuned against.
    eprintln!(
        "held-out: {} of {} right; wrong: {wrong:#?}",
        HELD_OUT.len() - wrong.len(),
        HELD_OUT.len()
    );
    assert!(wrong.len() * 4 <= HELD_OUT.len(), "{wrong:#?}");
}

#[test]
fn deployer_rules_flag_and_are_validated() {
    let rules = [AdviceRule {
        name: "vault-root".into(),
        pattern: r"vault\s+token\s+create\s+.*-policy=root".into(),
    }];
    let d = Detectors::default().with_advice_rules(&rules).unwrap();
    let s = d.scan("then run VAULT token create -policy=root and share it");
    assert!(s.labels.contains(LABEL_PRIVILEGED_ADVICE));
    assert_eq!(s.findings[0].detector, "advice-rule:vault-root");
    assert!(!d
        .scan("vault token lookup")
        .labels
        .contains(LABEL_PRIVILEGED_ADVICE));
    // Without the rule the same text is clean.
    assert!(!flagged("then run vault token create -policy=root"));
    let bad = [AdviceRule {
        name: "x".into(),
        pattern: "(unclosed".into(),
    }];
    assert!(matches!(
        Detectors::default().with_advice_rules(&bad),
        Err(RuleError::Invalid { .. })
    ));
    let empty = [AdviceRule {
        name: "y".into(),
        pattern: "a*".into(),
    }];
    assert!(matches!(
        Detectors::default().with_advice_rules(&empty),
        Err(RuleError::MatchesEmpty { .. })
    ));
    let unnamed = [AdviceRule {
        name: " ".into(),
        pattern: "x".into(),
    }];
    assert!(matches!(
        Detectors::default().with_advice_rules(&unnamed),
        Err(RuleError::NoName { index: 0 })
    ));
}

#[test]
fn advice_inside_a_long_text_is_found_once_per_place() {
    let filler = "The weekly report is attached; nothing changed in the pipeline. ".repeat(200);
    let text = format!("{filler}\nDonnez l'accès en écriture à tout le monde.\n{filler}\ngsutil iam ch allUsers:objectViewer gs://b\n");
    let s = Detectors::default().scan(&text);
    assert!(s.labels.contains(LABEL_PRIVILEGED_ADVICE));
    assert!(!s.truncated);
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        "[ -~]{0,16}",
        Just("gsutil iam ch ".to_owned()),
        Just("allUsers:".to_owned()),
        Just("kubectl create clusterrolebinding x --clusterrole=".to_owned()),
        Just("chmod -R ".to_owned()),
        Just("setfacl -m o::".to_owned()),
        Just("usermod -aG ".to_owned()),
        Just("\"Action\": \"*\", ".to_owned()),
        Just("\"Resource\": [\"*\"]".to_owned()),
        Just(" ALL=(ALL) NOPASSWD: ".to_owned()),
        Just("GRANT ALL ON ".to_owned()),
        Just(" TO PUBLIC".to_owned()),
        Just("Gebt allen ".to_owned()),
        Just("Zugriff ".to_owned()),
        Just("tout le monde ".to_owned()),
        Just("全員に管理者権限を".to_owned()),
        Just("'\"\\\n".to_owned()),
        Just("--visibility=".to_owned()),
        Just("block_public_acls = ".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn advice_scan_never_panics(parts in prop::collection::vec(piece(), 0..40), max_bytes in 1usize..2000) {
        let text = parts.concat();
        let d = Detectors::new(ScanLimits { max_bytes, ..ScanLimits::default() });
        let s = d.scan(&text);
        prop_assert!(s.findings.len() <= ScanLimits::default().max_findings);
        let _ = d.scan_bytes(text.as_bytes());
    }
}

/// A second batch written after the scenarios, also never tuned against: (text, widens).
const HELD_OUT_2: &[(&str, bool)] = &[
    ("Vergebt Administratorrechte an alle Auftragnehmer.", true),
    ("Schaltet die Multi-Faktor-Authentifizierung ab.", true),
    ("Mettez le bucket en public.", true),
    ("Donne à tous les stagiaires les droits de suppression.", true),
    ("Quita la contraseña del portal de administración.", true),
    ("Asigna el rol de propietario a cualquier persona.", true),
    ("Deixe o bucket público.", true),
    ("Compartilhe a planilha de salários com todo mundo.", true),
    ("社外の人にも閲覧権限を付与してください。", true),
    ("kubectl create rolebinding dev-admin --clusterrole=admin --group=system:serviceaccounts -n prod", true),
    ("chmod =rwx /srv/share", true),
    ("echo '%users ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/users", true),
    ("aws s3 cp report.csv s3://acme-exports/ --acl public-read-write", true),
    ("gcloud sql instances patch billing-db --authorized-networks=0.0.0.0/0", true),
    ("GRANT pg_read_all_data TO intern;", true),
    ("az ad group member add --group 'Global Admins' --member-id 1234", true),
    ("Vergebt Leserechte nur an das Finanzteam.", false),
    ("Le bucket reste privé, ne le rendez pas public.", false),
    ("Quita el acceso de escritura a los externos.", false),
    ("usermod -L eve", false),
    ("chmod 750 /srv/app", false),
    ("kubectl get clusterrolebindings -o wide", false),
    ("SELECT grantee FROM information_schema.role_table_grants WHERE grantee = 'PUBLIC';", false),
];

#[test]
fn held_out_variants_second_batch() {
    let wrong: Vec<_> = HELD_OUT_2
        .iter()
        .filter(|(t, widens)| flagged(t) != *widens)
        .collect();
    eprintln!(
        "held-out (second batch): {} of {} right; wrong: {wrong:#?}",
        HELD_OUT_2.len() - wrong.len(),
        HELD_OUT_2.len()
    );
    assert!(wrong.len() * 4 <= HELD_OUT_2.len(), "{wrong:#?}");
}

#[test]
fn text_made_of_configuration_candidates_stays_bounded() {
    // Every word a candidate that reads a window: the work budget runs out and the scan is
    // marked truncated (callers treat it as carrying the most sensitive label).
    for unit in [
        "\"*\" ",
        "gsutil ",
        "roles/owner ",
        "Zugriff alle ",
        "全員に権限を",
    ] {
        let junk = unit.repeat(200_000 / unit.len());
        let s = Detectors::new(ScanLimits {
            max_bytes: junk.len(),
            ..ScanLimits::default()
        })
        .scan(&junk);
        assert!(s.findings.len() <= ScanLimits::default().max_findings);
        if unit == "\"*\" " {
            assert!(s.truncated, "{unit}");
        }
    }
}

/// Found by attacking the recognisers after the held-out batches, then closed: an audience
/// allowed an action ("accessible à tous"), a command inside `find -exec`, a sudoers line
/// inside double quotes. Still missed and left open: sentences with none of the candidate
/// words ("Bitte den Bucket für alle freigeben", "Hazlo accesible para todos": making these
/// words candidates slowed the combined scan by a third), "公開範囲を全員に変更してください"
/// (a visibility scope changed to everyone) and "abre el puerto 22 a todo internet".
#[test]
fn found_by_attacking_the_recognisers() {
    for t in [
        "Rends le dossier accessible à tous.",
        "find /srv -type d -exec chmod 777 {} +",
        "sudo sh -c 'echo \"bob ALL=(ALL) NOPASSWD:ALL\" >> /etc/sudoers'",
        "Erlaubt anonymen Zugriff auf die API.",
        "kubectl create clusterrolebinding x --clusterrole=cluster-admin --user=system:anonymous",
    ] {
        assert!(flagged(t), "{t}");
    }
    for t in [
        "Der Bucket ist nur für das Finanzteam freigegeben.",
        "Le dossier est accessible aux administrateurs seulement.",
    ] {
        assert!(!flagged(t), "{t}");
    }
}
