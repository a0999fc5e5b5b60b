//! Money: an integer count of minor units and an ISO 4217 currency.
//!
//! Never floating point. Arithmetic is checked: an overflow is an error, never
//! a wrap. Decimal strings ("149.90") are the only text form.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a currency code or an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("unknown currency code {0:?} (expected an ISO 4217 code such as USD)")]
    UnknownCurrency(String),
    #[error("{0:?} is not a decimal amount (expected digits with an optional '.' and fraction, e.g. 149.90)")]
    NotADecimal(String),
    #[error("{amount:?} has more than {digits} fraction digits for {currency}")]
    TooPrecise {
        amount: String,
        currency: Currency,
        digits: u8,
    },
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("arithmetic overflow")]
    Overflow,
}

/// ISO 4217 active codes with their minor digits (2 unless listed here).
const ZERO_DIGITS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DIGITS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const FOUR_DIGITS: &[&str] = &["CLF", "UYW"];
const TWO_DIGITS: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUC", "CUP", "CVE", "CZK", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR",
    "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB",
    "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC",
    "SYP", "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN",
    "UYU", "UZS", "VED", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
];

/// An ISO 4217 currency code known to this build.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses an upper-case ISO 4217 code; unknown codes are refused.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let known = [ZERO_DIGITS, TWO_DIGITS, THREE_DIGITS, FOUR_DIGITS]
            .iter()
            .any(|table| table.contains(&code));
        match code.as_bytes() {
            &[a, b, c] if known => Ok(Self([a, b, c])),
            _ => Err(MoneyError::UnknownCurrency(code.to_owned())),
        }
    }

    pub fn code(&self) -> &str {
        // The bytes came from a known ASCII code in `parse`.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// How many digits follow the decimal point in this currency.
    pub fn minor_digits(&self) -> u8 {
        let code = self.code();
        if ZERO_DIGITS.contains(&code) {
            0
        } else if THREE_DIGITS.contains(&code) {
            3
        } else if FOUR_DIGITS.contains(&code) {
            4
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.code().to_owned()
    }
}

/// An amount of one currency, in minor units (cents for USD, yen for JPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Parses a decimal string such as "149.90" or "-3" in `currency`.
    ///
    /// Accepted: an optional leading '-', one or more digits, optionally '.'
    /// and one or more digits, with at most the currency's minor digits.
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let not_decimal = || MoneyError::NotADecimal(text.to_owned());
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(not_decimal()),
            None => (unsigned, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(not_decimal());
        }
        let digits = currency.minor_digits();
        if fraction.len() > usize::from(digits) {
            return Err(MoneyError::TooPrecise {
                amount: text.to_owned(),
                currency,
                digits,
            });
        }
        let out_of_range = || MoneyError::OutOfRange(text.to_owned());
        let mut minor: i64 = 0;
        let padded = fraction.bytes().chain(std::iter::repeat(b'0'));
        for b in whole.bytes().chain(padded.take(usize::from(digits))) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or_else(out_of_range)?;
        }
        Ok(Self::new(if negative { -minor } else { minor }, currency))
    }

    /// The decimal string with exactly the currency's minor digits.
    pub fn to_decimal_string(&self) -> String {
        let digits = u32::from(self.currency.minor_digits());
        let magnitude = self.minor.unsigned_abs();
        let sign = if self.minor < 0 { "-" } else { "" };
        if digits == 0 {
            return format!("{sign}{magnitude}");
        }
        let scale = 10u64.pow(digits);
        let width = digits as usize;
        format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(minor, self.currency))
    }

    /// Multiplies by a non-negative count (quantity x unit price).
    pub fn checked_mul(self, factor: u32) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(i64::from(factor))
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(minor, self.currency))
    }

    /// `self x bps / 10000`, rounded half to even (banker's rounding).
    pub fn basis_points_half_even(self, bps: u32) -> Result<Money, MoneyError> {
        let product = i128::from(self.minor) * i128::from(bps);
        let quotient = product.div_euclid(10_000);
        let remainder = product.rem_euclid(10_000);
        let rounded = match remainder.cmp(&5_000) {
            std::cmp::Ordering::Less => quotient,
            std::cmp::Ordering::Greater => quotient + 1,
            std::cmp::Ordering::Equal if quotient % 2 == 0 => quotient,
            std::cmp::Ordering::Equal => quotient + 1,
        };
        let minor = i64::try_from(rounded).map_err(|_| MoneyError::Overflow)?;
        Ok(Self::new(minor, self.currency))
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn minor_digits_follow_iso_4217() {
        let digits = |c: &str| Currency::parse(c).unwrap().minor_digits();
        assert_eq!(digits("USD"), 2);
        assert_eq!(digits("EUR"), 2);
        assert_eq!(digits("JPY"), 0);
        assert_eq!(digits("KWD"), 3);
        assert_eq!(digits("CLF"), 4);
    }

    #[test]
    fn unknown_and_malformed_currency_codes_are_refused() {
        for code in ["usd", "XYZ", "US", "USDD", "", "XXX"] {
            assert_eq!(
                Currency::parse(code),
                Err(MoneyError::UnknownCurrency(code.to_owned())),
                "{code}"
            );
        }
    }

    #[test]
    fn decimal_strings_parse_to_minor_units() {
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::parse("149.90", usd()).unwrap().minor, 14990);
        assert_eq!(Money::parse("149.9", usd()).unwrap().minor, 14990);
        assert_eq!(Money::parse("149", usd()).unwrap().minor, 14900);
        assert_eq!(Money::parse("0.01", usd()).unwrap().minor, 1);
        assert_eq!(Money::parse("-2.50", usd()).unwrap().minor, -250);
        assert_eq!(Money::parse("1500", jpy).unwrap().minor, 1500);
        assert_eq!(Money::parse("1.234", kwd).unwrap().minor, 1234);
    }

    #[test]
    fn malformed_decimals_are_refused() {
        for text in [
            "", "-", ".5", "5.", "1,00", "1e3", "+1", " 1", "1.2.3", "abc", "--1",
        ] {
            assert_eq!(
                Money::parse(text, usd()),
                Err(MoneyError::NotADecimal(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn too_many_fraction_digits_are_refused() {
        let jpy = Currency::parse("JPY").unwrap();
        assert!(matches!(
            Money::parse("1.001", usd()),
            Err(MoneyError::TooPrecise { digits: 2, .. })
        ));
        assert!(matches!(
            Money::parse("1.5", jpy),
            Err(MoneyError::TooPrecise { digits: 0, .. })
        ));
    }

    #[test]
    fn amounts_beyond_i64_are_out_of_range() {
        assert!(matches!(
            Money::parse("99999999999999999999", usd()),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn formatting_uses_the_currency_minor_digits() {
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::new(14990, usd()).to_decimal_string(), "149.90");
        assert_eq!(Money::new(5, usd()).to_decimal_string(), "0.05");
        assert_eq!(Money::new(-5, usd()).to_decimal_string(), "-0.05");
        assert_eq!(Money::new(1500, jpy).to_decimal_string(), "1500");
        assert_eq!(Money::new(1, kwd).to_decimal_string(), "0.001");
        assert_eq!(
            Money::new(i64::MIN, usd()).to_decimal_string(),
            "-92233720368547758.08"
        );
    }

    #[test]
    fn arithmetic_overflow_is_an_error() {
        let max = Money::new(i64::MAX, usd());
        assert_eq!(
            max.checked_add(Money::new(1, usd())),
            Err(MoneyError::Overflow)
        );
        assert_eq!(max.checked_mul(2), Err(MoneyError::Overflow));
        let eur = Currency::parse("EUR").unwrap();
        assert!(matches!(
            Money::new(1, usd()).checked_add(Money::new(1, eur)),
            Err(MoneyError::CurrencyMismatch(_, _))
        ));
    }

    #[test]
    fn basis_points_round_half_to_even() {
        // 0.25 -> 0, 0.75 -> 1 (ties to even); 1.5 -> 2, 2.5 -> 2.
        let tax = |minor: i64, bps: u32| {
            Money::new(minor, usd())
                .basis_points_half_even(bps)
                .unwrap()
                .minor
        };
        assert_eq!(tax(25, 1000), 2); // 2.5 -> 2
        assert_eq!(tax(35, 1000), 4); // 3.5 -> 4
        assert_eq!(tax(15, 1000), 2); // 1.5 -> 2
        assert_eq!(tax(14, 1000), 1); // 1.4 -> 1
        assert_eq!(tax(16, 1000), 2); // 1.6 -> 2
        assert_eq!(tax(10000, 825), 825);
        assert_eq!(tax(12345, 0), 0);
        assert_eq!(tax(12345, 10000), 12345);
    }

    #[test]
    fn parse_and_format_round_trip() {
        for text in ["0.00", "149.90", "-0.01", "92233720368547758.07"] {
            assert_eq!(Money::parse(text, usd()).unwrap().to_decimal_string(), text);
        }
    }
}
