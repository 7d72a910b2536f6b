use super::*;
use petrel_config::{OperatorMode, ResolverConfig, TrustedOperator};
use petrel_jwt::{Account, Operator};

fn operator(strict: bool, signing: &nkeys::KeyPair) -> (nkeys::KeyPair, TrustedOperator) {
    let op = nkeys::KeyPair::new_operator();
    let mut c = Claims::new(
        op.public_key(),
        "OP",
        Operator {
            kind: "operator".into(),
            signing_keys: vec![signing.public_key()],
            strict_signing_key_usage: strict,
            version: 2,
            ..Operator::default()
        },
    );
    let jwt = petrel_jwt::encode(&mut c, &op, 1).unwrap();
    (op, TrustedOperator { jwt, claims: c })
}

fn account_jwt(signer: &nkeys::KeyPair, account: &nkeys::KeyPair) -> String {
    let mut c = Claims::new(
        account.public_key(),
        "A",
        Account {
            kind: "account".into(),
            version: 2,
            ..Account::default()
        },
    );
    petrel_jwt::encode(&mut c, signer, unix_now()).unwrap()
}

fn trust(op: TrustedOperator, preload: Vec<(String, String)>) -> Trust {
    Trust::load(&OperatorMode {
        operators: vec![op],
        resolver: Some(ResolverConfig::Memory),
        preload,
    })
    .unwrap()
}

#[test]
fn strict_signing_key_usage_refuses_the_operators_own_key() {
    let signing = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    for strict in [false, true] {
        let (op, trusted) = operator(strict, &signing);
        let t = trust(trusted, Vec::new());
        assert!(t.verify_account(&account_jwt(&signing, &account)).is_ok());
        assert_eq!(
            t.verify_account(&account_jwt(&op, &account)).is_ok(),
            !strict,
            "strict {strict}"
        );
    }
}

#[test]
fn preloads_that_do_not_verify_or_name_another_key_are_left_out() {
    let signing = nkeys::KeyPair::new_operator();
    let (_, trusted) = operator(false, &signing);
    let good = nkeys::KeyPair::new_account();
    let misfiled = nkeys::KeyPair::new_account();
    let rogue = nkeys::KeyPair::new_operator();
    let untrusted = nkeys::KeyPair::new_account();
    let t = trust(
        trusted,
        vec![
            (good.public_key(), account_jwt(&signing, &good)),
            (misfiled.public_key(), account_jwt(&signing, &good)),
            (untrusted.public_key(), account_jwt(&rogue, &untrusted)),
        ],
    );
    let held: Vec<String> = t.accounts().iter().map(|a| a.claims.sub.clone()).collect();
    assert_eq!(held, vec![good.public_key()]);
}

#[test]
fn limits_take_the_tighter_of_user_and_account() {
    assert_eq!(tighter(-1, -1), None);
    assert_eq!(tighter(5, -1), Some(5));
    assert_eq!(tighter(-1, 3), Some(3));
    assert_eq!(tighter(5, 3), Some(3));
    assert_eq!(tighter(0, 7), Some(7));
}
